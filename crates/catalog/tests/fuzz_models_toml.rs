//! Fuzzing the user's `models.toml`: mutations of real catalog entries (a dense model, one
//! with a Gemma-style shape, a mixture of experts) must parse, or fail with an error, and
//! never panic, here or in what the app asks of a parsed entry (its quantizations and fit
//! candidates). Seeded and reproducible (minibar-fuzz); `MINIBAR_FUZZ_CASES` sets the count.

use minibar_catalog::Catalog;
use minibar_fuzz::proptest::prelude::*;
use minibar_fuzz::{fuzz, spliced_text, text_mutations};

/// The built-in catalog's entries numbered `which` (1-based, in file order).
fn entries(which: &[usize]) -> String {
    let text = include_str!("../../../models.toml");
    let blocks: Vec<&str> = text.split("[[models]]").collect();
    which
        .iter()
        .map(|&i| format!("[[models]]{}", blocks[i]))
        .collect()
}

/// TOML and catalog pieces that reach the parser's and the checks' corners.
const TOML: &[&str] = &[
    "[[models]]",
    "[models.shape]",
    "=",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "#",
    "layers = 0",
    "heads = 0",
    "kv_heads = 0",
    "head_dim = 0",
    "hidden = -1",
    "vocab = 18446744073709551615",
    "params_total = 0",
    "max_context = 0",
    "quant = \"3bit\"",
    "quant = \"8bit,experts=mxfp4\"",
    "quant = \"\"",
    "moe = { experts = 0, experts_per_token = 9, moe_intermediate = 0 }",
    "id = \"../../x\"",
    "1e400",
    "nan",
    "inf",
    "-0",
    "0x7fffffff",
    "\"\\u0000\"",
];

fn use_catalog(text: &str) -> bool {
    let Ok(catalog) = Catalog::parse(text, "fuzz models.toml") else {
        return false;
    };
    for entry in catalog.entries() {
        let _ = entry.candidates();
        for repo in &entry.mlx {
            let _ = repo.quantization();
        }
    }
    let _ = catalog.candidates();
    true
}

#[test]
fn the_seed_is_valid() {
    let catalog = Catalog::parse(&entries(&[1, 10, 15]), "seed").unwrap();
    assert_eq!(catalog.entries().len(), 3);
    assert!(catalog.entries().iter().any(|e| e.is_moe()));
}

#[test]
fn fuzz_models_toml() {
    let seed = entries(&[1, 10, 15]);
    let strategy = prop_oneof![text_mutations(&seed), spliced_text(&seed, TOML)];
    fuzz("models.toml", strategy, |text| use_catalog(&text));
}
