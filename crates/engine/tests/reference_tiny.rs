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
