//! Every load goes through minibar-fit's gate: a model that won't fit is refused with the
//! numbers, a forced one loads, and MLX's memory and cache limits follow the verdict either
//! way. One test in its own binary: MLX's limits are process-wide.

mod support;

use minibar_engine::{EngineError, LoadOptions};
use minibar_fit::{Budget, BudgetSource, FitLevel, LoadRequest};

fn budget(usable: u64) -> Budget {
    Budget {
        total: usable * 4,
        gpu_limit: None,
        available: Some(usable),
        held_by_minibar: 0,
        usable,
        source: BudgetSource::ThisMachine,
    }
}

fn options(usable: u64, force: bool) -> LoadOptions {
    LoadOptions {
        memory: LoadRequest {
            force,
            budget: Some(budget(usable)),
            ..LoadRequest::default()
        },
        ..LoadOptions::default()
    }
}

/// MLX's cache limit, read by setting it (mlx-c has no getter) and putting it back.
fn cache_limit() -> u64 {
    let limit = mlx_rs::memory::set_cache_limit(0).unwrap();
    mlx_rs::memory::set_cache_limit(limit).unwrap();
    limit as u64
}

#[test]
fn loads_are_gated_and_mlx_limits_follow_the_verdict() {
    let Some(gguf) = support::default_gguf() else {
        return;
    };
    let on_disk = std::fs::metadata(&gguf).unwrap().len();

    // Half the model's bytes: refused, with both numbers, before anything is read.
    let small = on_disk / 2;
    let err = match minibar_engine::load(&gguf, &options(small, false)) {
        Err(e) => e,
        Ok(_) => panic!("a model twice the budget loaded unforced"),
    };
    let EngineError::WontFit(refusal) = &err else {
        panic!("expected a refusal, got {err}");
    };
    assert_eq!(refusal.verdict.needed, on_disk);
    assert_eq!(refusal.verdict.usable, small);
    assert!(err.to_string().contains("won't fit"), "{err}");

    // Forced: it loads, and MLX is still held to the budget, with no room for a cache.
    let forced = minibar_engine::load(&gguf, &options(small, true)).unwrap();
    assert!(forced.admission.forced);
    assert_eq!(forced.admission.verdict.level, FitLevel::WontFit);
    assert_eq!(minibar_engine::memory::memory_limit().unwrap(), small);
    assert_eq!(cache_limit(), 0);
    drop(forced);

    // A roomy budget: the limit is the budget, the cache what the model leaves spare.
    let roomy = 8 * on_disk;
    let fits = minibar_engine::load(&gguf, &options(roomy, false)).unwrap();
    assert!(!fits.admission.forced);
    assert_eq!(minibar_engine::memory::memory_limit().unwrap(), roomy);
    assert_eq!(cache_limit(), roomy - on_disk);
}
