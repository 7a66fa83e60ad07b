//! Sampling against mlx-lm's samplers: for the same logits and settings (temperature, top-p,
//! top-k, min-p, repetition penalty, alone and together), Minibar keeps the same tokens with
//! the same probabilities. And a seed reproduces a whole sampled reply.

mod support;

use minibar_engine::{
    generate::{Conversation, GenerateOptions},
    load,
    sample::{Sampler, SamplingParams},
    CancelToken, LoadOptions,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;
use support::*;

const VOCAB: usize = 64;

/// One comparison: logits, the tokens so far, and the settings.
struct Case {
    name: &'static str,
    logits: Vec<f32>,
    history: Vec<u32>,
    params: SamplingParams,
}

fn case(name: &'static str, logits: &[f32], params: SamplingParams) -> Case {
    Case {
        name,
        logits: logits.to_vec(),
        history: Vec::new(),
        params,
    }
}

fn cases() -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(13);
    let random: Vec<f32> = (0..VOCAB).map(|_| rng.random_range(-4.0..4.0)).collect();
    // A peaked distribution: a few likely tokens over a flat tail.
    let peaked: Vec<f32> = (0..VOCAB)
        .map(|i| {
            if i % 17 == 3 {
                6.0 - i as f32 / 20.0
            } else {
                rng.random_range(-2.0..1.0)
            }
        })
        .collect();
    // Ties where top-p and top-k cut: mlx-lm keeps every token tied with the last one kept.
    let mut tied = vec![-3.0f32; VOCAB];
    tied[..6].copy_from_slice(&[3.0, 2.0, 2.0, 2.0, 1.0, 1.0]);
    let p = |temperature| SamplingParams {
        temperature,
        ..SamplingParams::default()
    };
    let mut all = vec![
        case("greedy", &random, p(0.0)),
        case("temperature 1", &random, p(1.0)),
        case("temperature 0.6", &random, p(0.6)),
        case("temperature 1.7", &random, p(1.7)),
        case(
            "top-p 0.9",
            &random,
            SamplingParams {
                top_p: 0.9,
                ..p(1.0)
            },
        ),
        case(
            "top-p 0.5, hot",
            &random,
            SamplingParams {
                top_p: 0.5,
                ..p(2.0)
            },
        ),
        case(
            "top-p 0.7, peaked",
            &peaked,
            SamplingParams {
                top_p: 0.7,
                ..p(0.7)
            },
        ),
        case(
            "top-p on ties",
            &tied,
            SamplingParams {
                top_p: 0.6,
                ..p(1.0)
            },
        ),
        case("top-k 5", &random, SamplingParams { top_k: 5, ..p(1.0) }),
        case("top-k 1", &random, SamplingParams { top_k: 1, ..p(0.8) }),
        case(
            "min-p 0.1",
            &random,
            SamplingParams {
                min_p: 0.1,
                ..p(1.0)
            },
        ),
        case(
            "min-p 0.05, hot",
            &peaked,
            SamplingParams {
                min_p: 0.05,
                ..p(2.5)
            },
        ),
        case(
            "min-p 0.3, cold",
            &random,
            SamplingParams {
                min_p: 0.3,
                ..p(0.5)
            },
        ),
        case(
            "all filters, top-k binds",
            &random,
            SamplingParams {
                top_p: 0.95,
                min_p: 0.01,
                top_k: 4,
                ..p(0.9)
            },
        ),
        case(
            "all filters, top-p binds",
            &peaked,
            SamplingParams {
                top_p: 0.6,
                min_p: 0.001,
                top_k: 20,
                ..p(1.2)
            },
        ),
        case(
            "all filters, min-p binds",
            &random,
            SamplingParams {
                top_p: 0.99,
                min_p: 0.2,
                top_k: 30,
                ..p(0.8)
            },
        ),
    ];
    let history: Vec<u32> = vec![1, 5, 5, 9, 40, 41, 42, 3, 17, 20, 22, 5];
    let penalized = |name, temperature, penalty, context, top_p| Case {
        name,
        logits: random.clone(),
        history: history.clone(),
        params: SamplingParams {
            repetition_penalty: penalty,
            repetition_context: context,
            top_p,
            ..p(temperature)
        },
    };
    all.push(penalized("penalty 1.3", 1.0, 1.3, 64, 1.0));
    all.push(penalized("penalty 1.5, last 5", 0.7, 1.5, 5, 1.0));
    all.push(penalized("penalty 0.8 (a bonus)", 1.0, 0.8, 8, 1.0));
    all.push(penalized("penalty 2, greedy", 0.0, 2.0, 64, 1.0));
    all.push(penalized("penalty 1.2, top-p 0.8", 1.1, 1.2, 10, 0.8));
    all
}

fn to_json(c: &Case) -> serde_json::Value {
    let p = &c.params;
    json!({
        "logits": c.logits,
        "history": c.history,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "top_k": p.top_k,
        "min_p": p.min_p,
        "repetition_penalty": p.repetition_penalty,
        "repetition_context": p.repetition_context,
    })
}

/// mlx-lm's distribution for each case (the probability of every token), cached by content.
fn mlx_lm_distributions(python: &std::path::Path, cases: &[Case]) -> Vec<Vec<f64>> {
    let arg = serde_json::to_string(&cases.iter().map(to_json).collect::<Vec<_>>()).unwrap();
    let mut key = Key::for_script("mlx_lm_sample.py");
    key.bytes(arg.as_bytes());
    let script = script("mlx_lm_sample.py");
    let out = minibar_testkit::cached(&key, || {
        run_python(python, &[script.to_str().unwrap(), arg.as_str()])
    });
    serde_json::from_str(&out).expect("reference JSON")
}

#[test]
fn filtered_distributions_match_mlx_lm() {
    let Some(python) = python() else { return };
    let cases = cases();
    let reference = mlx_lm_distributions(&python, &cases);
    let mut worst = 0f64;
    for (c, theirs) in cases.iter().zip(&reference) {
        let logits = mlx_rs::Array::from_slice(&c.logits, &[VOCAB as i32]);
        let d = Sampler::new(c.params.clone())
            .distribution(&logits, &c.history)
            .unwrap();
        let mut ours = vec![0f64; VOCAB];
        for (&t, &p) in d.tokens.iter().zip(&d.probs) {
            ours[t as usize] = p;
        }
        let kept =
            |probs: &[f64]| -> Vec<usize> { (0..VOCAB).filter(|&i| probs[i] > 0.0).collect() };
        assert_eq!(kept(&ours), kept(theirs), "{}: kept tokens differ", c.name);
        let err = ours
            .iter()
            .zip(theirs)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        eprintln!(
            "{}: {} kept, largest probability difference {err:.1e}",
            c.name,
            d.tokens.len()
        );
        assert!(err < 1e-5, "{}: probabilities differ by {err:.1e}", c.name);
        worst = worst.max(err);
    }
    eprintln!(
        "{} cases, largest probability difference {worst:.1e}",
        cases.len()
    );
}

#[test]
fn a_seed_reproduces_a_reply() {
    let Some(python) = python() else { return };
    let model = load(&tiny_models(&python).join("llama"), &LoadOptions::default()).unwrap();
    let prompt = [3u32, 17, 42, 7, 99, 128, 5, 64];
    let reply = |seed| {
        let opts = GenerateOptions {
            sampling: SamplingParams {
                temperature: 1.0,
                top_p: 0.95,
                seed: Some(seed),
                ..SamplingParams::default()
            },
            max_tokens: 48,
            eos: Vec::new(),
            ignore_eos: true,
        };
        let mut out = Vec::new();
        Conversation::new(&model.model, 256)
            .generate(&model.model, &prompt, &opts, &CancelToken::new(), |t| {
                out.push(t);
                true
            })
            .unwrap();
        out
    };
    let first = reply(7);
    assert_eq!(reply(7), first, "the same seed gave another reply");
    assert_ne!(reply(8), first, "another seed gave the same reply");
    // Sampled, not greedy: the reply is not the greedy continuation.
    assert_ne!(first, greedy(&model, &prompt, 48));
}
