//! Batched decoding (left padding, masks) gives each sequence the tokens it gets alone.

mod support;

use minibar_engine::{
    batch::generate_batch,
    generate::{Conversation, GenerateOptions},
    sample::SamplingParams,
    CancelToken, LoadOptions,
};

const STEPS: usize = 12;

#[test]
fn batch_decoding_equals_single_sequence_decoding() {
    let Some(gguf) = support::default_gguf() else {
        return;
    };
    let loaded = minibar_engine::load(&gguf, &LoadOptions::default()).unwrap();
    let model = &loaded.model;
    // Real text-like ids of different lengths, so the batch needs left padding.
    let prompts: Vec<Vec<u32>> = vec![
        vec![1, 504, 3458, 282, 4649, 314],
        vec![
            1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 3046,
        ],
        vec![1, 1780, 429, 6181, 2752, 30],
        vec![1, 28, 29, 30, 31, 32, 33, 34, 35],
    ];
    let cancel = CancelToken::new();
    let batched = generate_batch(model, &prompts, STEPS, &cancel).unwrap();
    assert_eq!(batched.tokens.len(), prompts.len());
    for (prompt, got) in prompts.iter().zip(&batched.tokens) {
        // The engine's own single-sequence path, greedy.
        let mut conv = Conversation::new(model, 256);
        let opts = GenerateOptions {
            sampling: SamplingParams::default(),
            max_tokens: STEPS,
            eos: vec![],
            ignore_eos: true,
        };
        let mut alone = Vec::new();
        conv.generate(model, prompt, &opts, &cancel, |t| {
            alone.push(t);
            true
        })
        .unwrap();
        assert_eq!(got, &alone, "prompt of {} tokens", prompt.len());
        // And a batch of one through the same batched code.
        let one = generate_batch(model, std::slice::from_ref(prompt), STEPS, &cancel).unwrap();
        assert_eq!(one.tokens[0], alone);
    }
}

#[test]
fn a_cancelled_batch_stops_and_empty_prompts_are_refused() {
    let Some(gguf) = support::default_gguf() else {
        return;
    };
    let loaded = minibar_engine::load(&gguf, &LoadOptions::default()).unwrap();
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = generate_batch(&loaded.model, &[vec![1, 2, 3]], 4, &cancel).unwrap_err();
    assert!(
        matches!(err, minibar_engine::EngineError::Cancelled),
        "{err}"
    );
    let err =
        generate_batch(&loaded.model, &[vec![1], vec![]], 4, &CancelToken::new()).unwrap_err();
    assert!(
        matches!(err, minibar_engine::EngineError::EmptyPrompt),
        "{err}"
    );
}
