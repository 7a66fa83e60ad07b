//! `minibar fit` and `minibar pull` over minibar-fit's one verdict and the engine's table of
//! architectures: the what-if table, the default model as the store holds it, and catalog
//! entries the engine does not run, hidden and refused with their reason.

use std::path::Path;
use std::process::{Command, Output};

use minibar_catalog::{Catalog, Support};
use minibar_engine::models::supported_architectures;
use serde_json::Value;

fn minibar(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minibar"))
        .env("MINIBAR_HOME", home)
        .env("MINIBAR_CATALOG", home.join("no-user-catalog.toml"))
        .env("XDG_CONFIG_HOME", home)
        // Nothing may reach a hub: a closed loopback port.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The first built-in entry the engine does not run, if any is left.
fn unsupported_entry() -> Option<(String, String)> {
    let catalog = Catalog::builtin().unwrap();
    catalog.entries().iter().find_map(|e| {
        let s = catalog.support(e, supported_architectures());
        s.reason().map(|r| (e.id.clone(), r.to_string()))
    })
}

#[test]
fn every_catalog_entry_runs_or_says_why_not() {
    let catalog = Catalog::builtin().unwrap();
    for e in catalog.entries() {
        let s = catalog.support(e, supported_architectures());
        assert!(
            !matches!(s, Support::Unknown(_)),
            "catalog entry `{}` ({}) is neither run by the engine nor given a reason in models.toml's [not_yet]",
            e.id,
            e.model_type()
        );
    }
}

#[test]
fn the_what_if_table_runs_llama_70b_at_4_bits_on_64_gb_but_not_at_8() {
    let home = tempfile::tempdir().unwrap();
    let doc = json(&minibar(
        home.path(),
        &["fit", "--table", "--context", "8192", "--json"],
    ));
    let sizes: Vec<u64> = doc["sizes_gb"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        sizes,
        [8, 16, 18, 24, 32, 36, 48, 64, 96, 128, 192, 256, 512]
    );
    let cell = |quant: &str, gb: u64| -> Value {
        let row = doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "llama-3.3-70b" && r["quant"] == quant)
            .unwrap_or_else(|| panic!("no llama-3.3-70b {quant} row"));
        row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["ram_gb"] == gb)
            .unwrap()
            .clone()
    };
    assert_eq!(cell("4bit", 64)["level"], "fits");
    assert!(cell("4bit", 64)["max_context"].as_u64().unwrap() > 8192);
    assert_eq!(cell("8bit", 64)["level"], "wont_fit");
    assert_eq!(cell("8bit", 128)["level"], "fits");
    // The same cell as a single what-if says the same.
    let one = json(&minibar(
        home.path(),
        &[
            "fit",
            "--ram",
            "64GB",
            "--model",
            "llama-3.3-70b",
            "--quant",
            "4bit",
            "--context",
            "8192",
            "--json",
        ],
    ));
    assert_eq!(one[0]["verdict"]["level"], "fits");
    assert_eq!(one[0]["max_context"], cell("4bit", 64)["max_context"]);
    // The text table: one column per size, the seed's row reading "fits" then "no".
    let text = minibar(home.path(), &["fit", "--table", "--context", "8192"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("64 GB") && text.contains("512 GB"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("Llama 3.3 70B") && l.contains(" 8bit "))
        .unwrap();
    assert!(row.split_whitespace().any(|w| w == "no"), "{row}");
}

#[test]
fn the_default_model_as_stored_is_predicted_as_the_engine_loads_it() {
    // SmolLM2-135M's config.json as `minibar import` writes it from the Q4_1 GGUF.
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("SmolLM2-135M-Instruct.Q4_1");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({
            "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "vocab_size": 49152, "max_position_embeddings": 8192, "tie_word_embeddings": true,
            "rms_norm_eps": 1e-5, "torch_dtype": "float16",
            "quantization": {"group_size": 32, "bits": 4, "mode": "affine"}
        })
        .to_string(),
    )
    .unwrap();
    let doc = json(&minibar(
        home.path(),
        &[
            "fit",
            "--model",
            dir.to_str().unwrap(),
            "--context",
            "640",
            "--runtime",
            "cpu",
            "--json",
        ],
    ));
    let e = &doc[0]["estimate"];
    assert_eq!(e["dequantized"], true);
    assert_eq!(e["loaded_as"], "f32");
    // 134,515,008 parameters in f32, as the engine expands them (538 MB), not 4-bit.
    assert_eq!(e["weights"]["total"], 134_515_008u64 * 4);
    let total = e["total"].as_u64().unwrap();
    assert!((550_000_000..650_000_000).contains(&total), "{total}");
}

#[test]
fn models_the_engine_does_not_run_are_hidden_and_refused_with_the_reason() {
    let Some((id, reason)) = unsupported_entry() else {
        eprintln!("SKIPPED: the engine runs every catalog architecture");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let shown = |args: &[&str]| -> Vec<Value> {
        json(&minibar(home.path(), args))["rows"]
            .as_array()
            .unwrap()
            .clone()
    };
    let plain = shown(&["fit", "--ram", "512GB", "--json"]);
    assert!(!plain.is_empty());
    assert!(plain.iter().all(|r| r["support"]["state"] == "runs"));
    let all = shown(&["fit", "--ram", "512GB", "--all", "--json"]);
    let row = all.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(row["support"]["state"], "not_yet");
    assert_eq!(row["support"]["reason"], reason.as_str());
    let text = minibar(home.path(), &["fit", "--ram", "512GB"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("does not run yet are hidden"), "{text}");

    let out = minibar(home.path(), &["pull", &id, "--yes"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not supported yet"), "{err}");
    assert!(err.contains(&reason), "{err}");
}

#[test]
fn a_gguf_is_judged_by_its_weights_as_loaded_not_its_file_size() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let path = gguf.to_str().unwrap();
    let run = |runtime: &str| {
        json(&minibar(
            home.path(),
            &[
                "fit",
                "--model",
                path,
                "--ram",
                "16GB",
                "--runtime",
                runtime,
                "--json",
            ],
        ))
    };
    // The CPU engine expands SmolLM2's Q4_1 weights to f32: 538 MB of matrices and the norms,
    // five times the file; the gate and the app ask the same function.
    let cpu = run("cpu");
    let file = cpu["load"]["file_bytes"].as_u64().unwrap();
    let loaded = cpu["load"]["loaded_bytes"].as_u64().unwrap();
    assert_eq!(cpu["load"]["dequantized"], true, "{cpu}");
    assert!(
        (538_060_032..538_060_032 + 1_000_000).contains(&loaded),
        "{cpu}"
    );
    assert!(loaded > 4 * file, "{cpu}");
    assert_eq!(cpu["verdict"]["needed"].as_u64(), Some(loaded));
    let weights = minibar_fit::GgufWeights::open(&gguf).unwrap();
    assert_eq!(
        loaded,
        weights
            .load(&minibar_fit::Runtime::cpu(), true)
            .loaded_bytes
    );
    // Metal keeps Q4_1's codes (4 bits and an f16 scale and bias per 32: its file's 5 bits).
    let metal = run("metal");
    assert_eq!(metal["load"]["dequantized"], false, "{metal}");
    assert!(
        metal["load"]["loaded_bytes"].as_u64().unwrap() < loaded / 3,
        "{metal}"
    );
}
