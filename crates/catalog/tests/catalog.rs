//! The built-in catalog's consistency, lookup and the user catalog merge.

use std::collections::BTreeSet;

use minibar_catalog::{Catalog, CatalogError};
use minibar_fit::{count_params, shape::KNOWN_MODEL_TYPES};

#[test]
fn builtin_catalog_parses_and_every_entry_is_consistent() {
    let catalog = Catalog::builtin().expect("every entry passes validate()");
    let n = catalog.entries().len();
    assert!(n >= 25, "the issue asks for at least 25 models, found {n}");
    for e in catalog.entries() {
        assert!(KNOWN_MODEL_TYPES.contains(&e.model_type()), "{}", e.id);
        let counts = count_params(&e.shape);
        let err = counts.total as f64 / e.params_total as f64 - 1.0;
        println!(
            "{:<32} stated {:>15} computed {:>15} ({:+.2}%)",
            e.id,
            e.params_total,
            counts.total,
            err * 100.0
        );
        assert!(err.abs() <= 0.02, "{}: {:+.2}%", e.id, err * 100.0);
        if let Some(active) = e.params_active {
            assert!(active <= e.params_total, "{}", e.id);
            assert!(counts.active < counts.total, "{}", e.id);
        }
        assert!(!e.mlx.is_empty(), "{} lists no MLX download", e.id);
    }
}

#[test]
fn catalog_spans_sizes_families_and_architectures() {
    let catalog = Catalog::builtin().unwrap();
    let smallest = catalog
        .entries()
        .iter()
        .map(|e| e.params_total)
        .min()
        .unwrap();
    let largest = catalog
        .entries()
        .iter()
        .map(|e| e.params_total)
        .max()
        .unwrap();
    assert!(smallest <= 140_000_000, "smallest {smallest}");
    assert!(largest >= 70_000_000_000, "largest {largest}");
    assert!(catalog.entries().iter().any(|e| e.is_moe()));
    assert!(catalog.entries().iter().any(|e| !e.is_moe()));
    let ids: BTreeSet<&str> = catalog.entries().iter().map(|e| e.id.as_str()).collect();
    for id in [
        "smollm2-135m",
        "smollm2-360m",
        "smollm2-1.7b",
        "llama-3.2-1b",
        "llama-3.2-3b",
        "llama-3.1-8b",
        "llama-3.3-70b",
        "qwen3-0.6b",
        "qwen3-1.7b",
        "qwen3-4b",
        "qwen3-8b",
        "qwen3-14b",
        "qwen3-32b",
        "qwen3-30b-a3b",
        "mistral-7b",
        "mistral-small-24b",
        "gemma-3-1b",
        "gemma-3-4b",
        "gemma-3-12b",
        "gemma-3-27b",
        "phi-4",
        "phi-4-mini",
        "deepseek-r1-distill-qwen-7b",
        "gpt-oss-20b",
        "gpt-oss-120b",
    ] {
        assert!(ids.contains(id), "missing {id}");
    }
}

#[test]
fn lookup_by_id_returns_the_entry_and_unknown_ids_return_none() {
    let catalog = Catalog::builtin().unwrap();
    let e = catalog.get("llama-3.3-70b").unwrap();
    assert_eq!(e.shape.layers, 80);
    assert!(e.gated);
    assert!(catalog.get("no-such-model").is_none());
}

#[test]
fn candidates_cover_each_download_and_the_original() {
    let catalog = Catalog::builtin().unwrap();
    let e = catalog.get("gpt-oss-20b").unwrap();
    let c = e.candidates();
    // No unquantized mlx repo is listed, so the original comes first.
    assert_eq!(c.len(), e.mlx.len() + 1);
    assert_eq!(c[0].repo.as_deref(), Some("openai/gpt-oss-20b"));
    assert_eq!(c[1].quant.to_string(), "8bit,experts=mxfp4");
    let q = catalog.get("qwen3-4b").unwrap();
    assert_eq!(
        q.candidates().len(),
        q.mlx.len(),
        "bf16 repo listed: no extra original"
    );
}

const USER: &str = r#"
[[models]]
id = "qwen3-4b"
name = "My Qwen3 4B"
family = "qwen3"
params_total = 4_022_468_096
license = "apache-2.0"
gated = false
hf_repo = "me/qwen3-4b-finetune"
mlx = [{ repo = "me/qwen3-4b-finetune-4bit", quant = "4bit-g32" }]
[models.shape]
model_type = "qwen3"
layers = 36
hidden = 2560
intermediate = 9728
heads = 32
kv_heads = 8
head_dim = 128
vocab = 151936
max_context = 40960
tied_embeddings = true
qk_norm = true

[[models]]
id = "tiny-llama"
name = "Tiny Llama"
family = "llama"
params_total = 1_100_048_384
license = "apache-2.0"
gated = false
hf_repo = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
[models.shape]
model_type = "llama"
layers = 22
hidden = 2048
intermediate = 5632
heads = 32
kv_heads = 4
vocab = 32000
max_context = 2048
"#;

#[test]
fn a_user_catalog_replaces_entries_by_id_and_adds_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.toml");
    std::fs::write(&path, USER).unwrap();
    let builtin = Catalog::builtin().unwrap();
    let merged = Catalog::load(Some(&path)).unwrap();
    assert_eq!(merged.entries().len(), builtin.entries().len() + 1);
    assert_eq!(merged.get("qwen3-4b").unwrap().name, "My Qwen3 4B");
    assert_eq!(merged.get("tiny-llama").unwrap().shape.layers, 22);
    // Order is kept: the replaced entry stays where it was.
    let pos = |c: &Catalog, id: &str| c.entries().iter().position(|e| e.id == id);
    assert_eq!(pos(&merged, "qwen3-4b"), pos(&builtin, "qwen3-4b"));
}

#[test]
fn a_bad_user_entry_is_rejected_with_its_id_and_reason() {
    let wrong_params = USER.replace("1_100_048_384", "2_000_000_000");
    match Catalog::parse(&wrong_params, "user") {
        Err(CatalogError::Invalid { id, reason, .. }) => {
            assert_eq!(id, "tiny-llama");
            assert!(reason.contains("params_total"), "{reason}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let typo = USER.replace("kv_heads = 4", "kv_head = 4");
    match Catalog::parse(&typo, "user") {
        Err(CatalogError::Parse { message, .. }) => {
            assert!(message.contains("kv_head"), "{message}")
        }
        other => panic!("expected Parse, got {other:?}"),
    }
    let unknown = USER.replace("model_type = \"llama\"", "model_type = \"mamba\"");
    assert!(matches!(
        Catalog::parse(&unknown, "user"),
        Err(CatalogError::Invalid { .. })
    ));
    let bad_quant = USER.replace("4bit-g32", "7bit");
    assert!(matches!(
        Catalog::parse(&bad_quant, "user"),
        Err(CatalogError::Invalid { .. })
    ));
    let missing = Catalog::load(Some(std::path::Path::new("/nonexistent/models.toml")));
    assert!(matches!(missing, Err(CatalogError::Io { .. })));
}

#[test]
fn an_unusable_user_catalog_is_set_aside_and_the_builtin_one_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.toml");
    std::fs::write(&path, "[[model]]\nid = \"half an entry\n").unwrap();
    // Strict loading (the CLI) reports it...
    assert!(Catalog::load(Some(&path)).is_err());
    // ...the app's loading starts anyway, keeps the file aside and says so.
    let (catalog, notice) = Catalog::load_or_set_aside(Some(&path)).unwrap();
    assert_eq!(
        catalog.entries().len(),
        Catalog::builtin().unwrap().entries().len()
    );
    let notice = notice.expect("the user is told");
    assert!(
        notice.starts_with("Your models.toml could not be used"),
        "{notice}"
    );
    assert!(!path.exists());
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].to_string_lossy().contains("models.toml.invalid-"));
    assert!(notice.contains(&*kept[0].to_string_lossy()));
    // A valid user catalog is merged as before and nothing is moved.
    std::fs::write(&path, USER).unwrap();
    let (merged, none) = Catalog::load_or_set_aside(Some(&path)).unwrap();
    assert!(none.is_none());
    assert!(path.exists());
    assert!(merged.entries().len() >= catalog.entries().len());
}

#[test]
fn local_models_are_described_by_repo_id_or_file_name() {
    let catalog = Catalog::builtin().unwrap();
    let id = |name: &str| catalog.describing(name).map(|e| e.id.as_str());
    assert_eq!(id("mlx-community/Qwen3-4B-4bit"), Some("qwen3-4b"));
    assert_eq!(id("MLX-Community/qwen3-4b-8BIT"), Some("qwen3-4b"));
    assert_eq!(id("Qwen/Qwen3-4B"), Some("qwen3-4b"));
    // The longest original name a file name contains wins.
    assert_eq!(
        id("mlx-community/Qwen3-4B-Instruct-2507-5bit"),
        Some("qwen3-4b-2507")
    );
    assert_eq!(id("SmolLM2-135M-Instruct.Q4_1.gguf"), Some("smollm2-135m"));
    assert_eq!(id("someone/unrelated-model"), None);
    assert_eq!(id(""), None);
}
