//! Sequences that join a decode batch mid-flight and leave it early get exactly the greedy
//! tokens they get alone.

mod support;

use minibar_engine::{
    continuous::DecodeBatch,
    generate::{Conversation, GenerateOptions},
    models::Transformer,
    sample::SamplingParams,
    CancelToken, LoadOptions,
};

const STEPS: usize = 10;

fn alone(model: &Transformer, prompt: &[u32], steps: usize) -> Vec<u32> {
    let mut conv = Conversation::new(model, 1024);
    let opts = GenerateOptions {
        sampling: SamplingParams::default(),
        max_tokens: steps,
        eos: vec![],
        ignore_eos: true,
    };
    let mut out = Vec::new();
    conv.generate(model, prompt, &opts, &CancelToken::new(), |t| {
        out.push(t);
        true
    })
    .unwrap();
    out
}

fn argmax_rows(logits: &mlx_rs::Array) -> Vec<u32> {
    let ids = mlx_rs::ops::indexing::argmax_axis(logits, -1, false)
        .unwrap()
        .as_type::<u32>()
        .unwrap();
    ids.as_slice::<u32>().to_vec()
}

#[test]
fn joining_and_leaving_mid_flight_keeps_each_sequences_greedy_tokens() {
    let Some(gguf) = support::default_gguf() else {
        return;
    };
    let loaded = minibar_engine::load(&gguf, &LoadOptions::default()).unwrap();
    let model = &loaded.model;
    assert!(DecodeBatch::can_batch(model));
    // A short prompt starts; a longer one joins after 3 steps (it starts at a negative
    // position); a short one joins after 5; the first leaves early.
    let prompts: Vec<Vec<u32>> = vec![
        vec![1, 504, 3458, 282, 4649, 314],
        vec![
            1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 3046, 28, 29, 30,
        ],
        vec![1, 1780, 429, 6181, 2752, 30],
    ];
    let join_at = [0usize, 3, 5];
    let wanted = [6usize, STEPS, STEPS];
    let expected: Vec<Vec<u32>> = prompts
        .iter()
        .zip(wanted)
        .map(|(p, n)| alone(model, p, n))
        .collect();

    let cancel = CancelToken::new();
    let mut batch = DecodeBatch::new(model);
    let mut rows: Vec<usize> = Vec::new(); // prompt index of each row
    let mut got: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut step = 0;
    loop {
        for (i, &at) in join_at.iter().enumerate() {
            if at == step {
                let logits = batch.join(model, &prompts[i], &cancel).unwrap();
                got[i].push(argmax_rows(&logits)[0]);
                rows.push(i);
            }
        }
        let done: Vec<usize> = (0..rows.len())
            .filter(|&r| got[rows[r]].len() >= wanted[rows[r]])
            .collect();
        batch.leave(&done).unwrap();
        rows = (0..rows.len())
            .filter(|r| !done.contains(r))
            .map(|r| rows[r])
            .collect();
        assert_eq!(batch.len(), rows.len());
        if rows.is_empty() && step > *join_at.iter().max().unwrap() {
            break;
        }
        if !rows.is_empty() {
            let last: Vec<u32> = rows.iter().map(|&i| *got[i].last().unwrap()).collect();
            let logits = batch.step(model, &last).unwrap();
            for (r, t) in argmax_rows(&logits).into_iter().enumerate() {
                got[rows[r]].push(t);
            }
        }
        step += 1;
    }
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "prompt {i}");
    }
    assert!(batch.is_empty());
    assert_eq!(batch.cache_bytes(), 0, "an empty batch holds no cache");
}

#[test]
fn a_step_needs_one_token_per_sequence() {
    let Some(gguf) = support::default_gguf() else {
        return;
    };
    let loaded = minibar_engine::load(&gguf, &LoadOptions::default()).unwrap();
    let model = &loaded.model;
    let mut batch = DecodeBatch::new(model);
    assert!(batch.step(model, &[]).is_err());
    batch
        .join(model, &[1, 504, 3458], &CancelToken::new())
        .unwrap();
    assert!(batch.step(model, &[1, 2]).is_err());
    assert!(batch.join(model, &[], &CancelToken::new()).is_err());
    let cancelled = CancelToken::new();
    cancelled.cancel();
    assert!(batch.join(model, &[1, 2, 3], &cancelled).is_err());
    assert_eq!(
        batch.len(),
        1,
        "a cancelled join leaves the batch as it was"
    );
}

#[test]
fn a_long_prompt_prefilled_between_steps_joins_with_its_greedy_tokens() {
    let Some(gguf) = support::default_gguf() else {
        return;
    };
    let loaded = minibar_engine::load(&gguf, &LoadOptions::default()).unwrap();
    let model = &loaded.model;
    let short: Vec<u32> = vec![1, 504, 3458, 282, 4649, 314];
    // Three prefill chunks of text-like ids.
    let long: Vec<u32> = (0..600u32).map(|i| 100 + (i * 37) % 4000).collect();
    let want_short = alone(model, &short, 12);
    let want_long = alone(model, &long, 6);

    let cancel = CancelToken::new();
    let mut batch = DecodeBatch::new(model);
    let mut got_short = vec![argmax_rows(&batch.join(model, &short, &cancel).unwrap())[0]];
    let mut joiner = Some(batch.begin_join(model, &long, 2).unwrap());
    assert_eq!(joiner.as_ref().unwrap().chunks_left(), 3);
    let mut got_long = Vec::new();
    while got_short.len() < 12 {
        if let Some(j) = joiner.as_mut() {
            j.prefill_chunk(model).unwrap();
            if j.is_complete() {
                let done = joiner.take().unwrap();
                got_long.push(argmax_rows(&batch.finish_join(done).unwrap())[0]);
            }
        }
        let mut last = vec![*got_short.last().unwrap()];
        if batch.len() == 2 {
            last.push(*got_long.last().unwrap());
        }
        let next = argmax_rows(&batch.step(model, &last).unwrap());
        got_short.push(next[0]);
        if batch.len() == 2 && got_long.len() < 6 {
            got_long.push(next[1]);
        }
    }
    assert_eq!(got_short, want_short);
    assert_eq!(got_long, want_long);

    // A joiner that misses its planned position is refused, not merged misaligned.
    let mut early = batch.begin_join(model, &[1, 2, 3], 1).unwrap();
    early.prefill_chunk(model).unwrap();
    assert!(batch.finish_join(early).is_err());
}

#[test]
fn newcomers_prefilled_together_get_their_greedy_tokens() {
    let Some(gguf) = support::default_gguf() else {
        return;
    };
    let loaded = minibar_engine::load(&gguf, &LoadOptions::default()).unwrap();
    let model = &loaded.model;
    let first: Vec<u32> = vec![1, 504, 3458, 282, 4649, 314];
    // Three lengths, so two of the group are left-padded; the longest is longer than what
    // the batch has decoded, so the group starts at a negative position.
    let group: Vec<Vec<u32>> = vec![
        vec![1, 1780, 429, 6181, 2752, 30],
        vec![
            1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 3046, 28, 29, 30,
        ],
        vec![1, 504, 30],
    ];
    let want_first = alone(model, &first, 8);
    let want: Vec<Vec<u32>> = group.iter().map(|p| alone(model, p, 5)).collect();

    // Into a running batch, after three steps.
    let mut batch = DecodeBatch::new(model);
    let mut got_first =
        vec![argmax_rows(&batch.join(model, &first, &CancelToken::new()).unwrap())[0]];
    for _ in 0..3 {
        let t = argmax_rows(&batch.step(model, &[*got_first.last().unwrap()]).unwrap())[0];
        got_first.push(t);
    }
    let mut got: Vec<Vec<u32>> = batch
        .join_many(model, &group)
        .unwrap()
        .iter()
        .map(|l| vec![argmax_rows(l)[0]])
        .collect();
    assert_eq!(batch.len(), 4);
    while got_first.len() < 8 {
        let mut last = vec![*got_first.last().unwrap()];
        last.extend(got.iter().map(|g| *g.last().unwrap()));
        let next = argmax_rows(&batch.step(model, &last).unwrap());
        got_first.push(next[0]);
        for (g, &t) in got.iter_mut().zip(&next[1..]) {
            if g.len() < 5 {
                g.push(t);
            }
        }
    }
    assert_eq!(got_first, want_first);
    assert_eq!(got, want);

    // Into an empty batch.
    let mut batch = DecodeBatch::new(model);
    let mut got: Vec<Vec<u32>> = batch
        .join_many(model, &group)
        .unwrap()
        .iter()
        .map(|l| vec![argmax_rows(l)[0]])
        .collect();
    while got[0].len() < 5 {
        let last: Vec<u32> = got.iter().map(|g| *g.last().unwrap()).collect();
        for (g, t) in got
            .iter_mut()
            .zip(argmax_rows(&batch.step(model, &last).unwrap()))
        {
            g.push(t);
        }
    }
    assert_eq!(got, want);
    assert!(batch.join_many(model, &[vec![1], vec![]]).is_err());
    assert_eq!(batch.len(), 3, "a refused group leaves the batch as it was");
}

#[test]
fn a_kept_prefix_serves_the_next_turn_with_its_greedy_tokens() {
    let Some(gguf) = support::default_gguf() else {
        return;
    };
    let loaded = minibar_engine::load(&gguf, &LoadOptions::default()).unwrap();
    let model = &loaded.model;
    let cancel = CancelToken::new();
    // Two sequences decode together; the second leaves first, so the kept one sat in a
    // padded batch (its storage has positions before its own first token).
    let first: Vec<u32> = vec![1, 504, 3458, 282, 4649, 314];
    let other: Vec<u32> = (0..20u32).map(|i| 100 + i * 7).collect();
    let mut batch = DecodeBatch::new(model);
    let mut tokens = vec![argmax_rows(&batch.join(model, &other, &cancel).unwrap())[0]];
    let mut mine = vec![argmax_rows(&batch.join(model, &first, &cancel).unwrap())[0]];
    let step =
        |batch: &mut DecodeBatch, last: &[u32]| argmax_rows(&batch.step(model, last).unwrap());
    let next = step(&mut batch, &[tokens[0], mine[0]]);
    tokens.push(next[0]);
    mine.push(next[1]);
    batch.leave(&[0]).unwrap();
    for _ in 0..4 {
        mine.push(step(&mut batch, &[*mine.last().unwrap()])[0]);
    }
    // The caches hold the prompt and every generated token but the last (never fed).
    let held: Vec<u32> = first
        .iter()
        .chain(&mine[..mine.len() - 1])
        .copied()
        .collect();
    let kept = batch.finish_last(held.clone()).unwrap().unwrap();
    assert!(batch.is_empty() && kept.nbytes() > 0);

    // The next turn: the whole history and more, then one that diverges half-way.
    let turn: Vec<u32> = held
        .iter()
        .chain(&[28, 29, 30, 1780, 429])
        .copied()
        .collect();
    let (logits, reused) = batch.join_reusing(model, kept, &turn, &cancel).unwrap();
    assert_eq!(reused, held.len());
    let mut got = vec![argmax_rows(&logits)[0]];
    for _ in 0..5 {
        got.push(step(&mut batch, &[*got.last().unwrap()])[0]);
    }
    assert_eq!(got, alone(model, &turn, 6));

    let again: Vec<u32> = got[..got.len() - 1].to_vec();
    let held2: Vec<u32> = turn.iter().chain(&again).copied().collect();
    let kept = batch.finish_last(held2).unwrap().unwrap();
    let diverging: Vec<u32> = held[..4]
        .iter()
        .chain(&[9690, 198, 2683])
        .copied()
        .collect();
    let (logits, reused) = batch
        .join_reusing(model, kept, &diverging, &cancel)
        .unwrap();
    assert_eq!(reused, 4);
    let mut got = vec![argmax_rows(&logits)[0]];
    for _ in 0..4 {
        got.push(step(&mut batch, &[*got.last().unwrap()])[0]);
    }
    assert_eq!(got, alone(model, &diverging, 5));
    assert!(
        batch.finish_last(vec![1]).unwrap().is_none(),
        "tokens that do not match the caches are not kept"
    );
}
