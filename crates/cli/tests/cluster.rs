//! `minibar cluster`: the CLI starts its ranks as copies of itself on loopback; `status`
//! shows the split and `generate` answers as one process does.

use std::process::Command;

fn minibar(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_minibar"))
        .args(args)
        .env_remove("MINIBAR_MODEL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "minibar {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn status_splits_the_layers_and_generate_answers_as_one_process() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let model = gguf.to_str().unwrap();
    let plan = minibar(&["cluster", "status", "--ranks", "3", "-m", model, "--json"]);
    let layers: Vec<(u64, u64)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let l = n["layers"].as_array().unwrap();
            (l[0].as_u64().unwrap(), l[1].as_u64().unwrap())
        })
        .collect();
    // SmolLM2's 30 layers, evenly: the three ranks share one machine.
    assert_eq!(layers, [(0, 10), (10, 20), (20, 30)]);
    // Each holds a third of the weights, no rank the whole file.
    let file = std::fs::metadata(&gguf).unwrap().len();
    for n in plan.as_array().unwrap() {
        let held = n["held"].as_u64().unwrap();
        assert!(held > 0 && held <= file / 3, "{n}");
    }

    let question = "What is the capital of France?";
    let one = minibar(&[
        "generate", "-m", model, "-p", question, "-n", "12", "--json",
    ]);
    let split = minibar(&[
        "cluster", "generate", "--ranks", "2", "-m", model, "-p", question, "-n", "12", "--json",
    ]);
    let text = split["report"]["text"].as_str().unwrap();
    assert!(text.contains("Paris"), "{split}");
    assert_eq!(text.trim(), one["text"].as_str().unwrap().trim(), "{one}");
}
