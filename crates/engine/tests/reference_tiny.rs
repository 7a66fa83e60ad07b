//! Tiny random-weight models of every supported architecture, built and run by mlx-lm (the
//! reference): Minibar loads the same files and must give the same next-token logits (1e-4
//! relative, f32) and the same 64 greedy tokens.

mod support;

use minibar_engine::{load, Dequantize, LoadOptions};
use support::*;

#[test]
fn every_architecture_matches_mlx_lm() {
    let Some(python) = python() else { return };
    let root = tiny_models(&python);
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 15,
        "expected every architecture, found {names:?}"
    );
    // Every architecture in the engine's table has a tiny model here.
    let tested: Vec<String> = names
        .iter()
        .map(|n| {
            let c: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(root.join(n).join("config.json")).unwrap(),
            )
            .unwrap();
            c["model_type"].as_str().unwrap().to_owned()
        })
        .collect();
    for arch in minibar_engine::models::ARCHITECTURES {
        assert!(
            arch.model_types
                .iter()
                .any(|t| tested.iter().any(|x| x == t)),
            "no tiny model of {:?}",
            arch.model_types
        );
    }
    for name in names {
        let dir = root.join(&name);
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        let prompt: Vec<u32> = reference["prompt"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let r = Reference::parse(&reference.to_string());
        let model = load(
            &dir,
            &LoadOptions {
                dequantize: Dequantize::Never,
                dtype: None,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = relative_error(&logits(&model, &prompt), &r.logits);
        eprintln!("{name}: logits relative error {err:.2e}");
        assert!(
            err <= 1e-4,
            "{name}: logits differ from mlx-lm by {err:.2e}"
        );
        assert_eq!(
            greedy(&model, &prompt, r.greedy.len()),
            r.greedy,
            "{name}: greedy tokens differ from mlx-lm"
        );
    }
}

/// Greedy tokens for `prompt` in `conv`, and how many prompt tokens came from its cache.
fn turn(
    model: &minibar_engine::LoadedModel,
    conv: &mut minibar_engine::generate::Conversation,
    prompt: &[u32],
) -> (Vec<u32>, usize) {
    use minibar_engine::{generate::GenerateOptions, sample::SamplingParams, CancelToken};
    let opts = GenerateOptions {
        sampling: SamplingParams::default(),
        max_tokens: 24,
        eos: Vec::new(),
        ignore_eos: true,
    };
    let mut out = Vec::new();
    let (_, stats) = conv
        .generate(&model.model, prompt, &opts, &CancelToken::new(), |t| {
            out.push(t);
            true
        })
        .unwrap();
    (out, stats.cached_tokens)
}

#[test]
fn sliding_window_chat_turns_reuse_the_cache_and_match_fresh_runs() {
    let Some(python) = python() else { return };
    // Gemma 3 and gpt-oss, each with a window of 8 on every other layer.
    for name in ["gemma3", "gpt_oss"] {
        let model = load(&tiny_models(&python).join(name), &LoadOptions::default()).unwrap();
        chat_turns_reuse_the_cache(&model);
    }
}

/// Greedy turns in one conversation against fresh runs, with the cached counts each reuses.
fn chat_turns_reuse_the_cache(model: &minibar_engine::LoadedModel) {
    use minibar_engine::generate::Conversation;
    let fresh = |prompt: &[u32]| turn(model, &mut Conversation::new(&model.model, 4096), prompt).0;
    let mut conv = Conversation::new(&model.model, 4096);
    // 250 tokens, and a reply that crosses 256 positions, where the sliding layers' storage
    // grows and drops what no later token can see.
    let p1: Vec<u32> = (0..250u32).map(|i| (i * 37 + 11) % 256).collect();
    let (r1, cached) = turn(model, &mut conv, &p1);
    assert_eq!((&r1, cached), (&fresh(&p1), 0));

    // Regenerating the reply: the sliding layers cannot rewind before position 256, so the
    // turn restarts from the checkpoint before the prompt's last token.
    let (again, cached) = turn(model, &mut conv, &p1);
    assert_eq!((&again, cached), (&r1, p1.len() - 1));

    // A follow-up turn reuses everything the conversation holds.
    let p2: Vec<u32> = [&p1[..], &r1[..], &[5, 6, 7]].concat();
    let (r2, cached) = turn(model, &mut conv, &p2);
    assert_eq!((&r2, cached), (&fresh(&p2), p1.len() + r1.len() - 1));

    // Editing the end of the last message: within what every layer can rewind.
    let mut p3 = p2.clone();
    let n = p3.len();
    p3[n - 2..].copy_from_slice(&[9, 9]);
    let (r3, cached) = turn(model, &mut conv, &p3);
    assert_eq!((&r3, cached), (&fresh(&p3), n - 2));

    // Diverging before both the layers' reach and the checkpoint: prefilled from the start.
    let p4: Vec<u32> = [&p1[..100], &[1, 2, 3]].concat();
    let (r4, cached) = turn(model, &mut conv, &p4);
    assert_eq!((&r4, cached), (&fresh(&p4), 0));
}
