//! The suite runs end to end on the default model with small settings, reports progress,
//! saves to the history, and stops when cancelled.

mod support;

use minibar_bench::{
    export, run_suite, BenchError, CancelToken, History, Mode, Progress, SuiteConfig,
};

fn small(gguf: std::path::PathBuf) -> SuiteConfig {
    SuiteConfig {
        repetitions: 2,
        n_prompt: 24,
        n_gen: 6,
        n_depth: 40,
        batch_sizes: vec![1, 3],
        batch_prompt: 5,
        batch_gen: 4,
        batch_repetitions: 2,
        bandwidth_elements: 1 << 20,
        ..SuiteConfig::quick(vec![gguf])
    }
}

#[test]
fn quick_suite_runs_end_to_end_on_the_default_model() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let config = small(gguf);
    let mut events = Vec::new();
    let run = run_suite(&config, &CancelToken::new(), &mut |p| events.push(p)).unwrap();

    assert_eq!(run.settings.mode, Mode::Quick);
    assert!(run.machine.bandwidth_gbs > 0.0);
    assert!(run.machine.logical_cores >= 1);
    assert!(!run.versions.mlx.is_empty() && run.versions.mlx != "unknown");
    assert_eq!(run.models.len(), 1);
    let m = &run.models[0];
    let labels: Vec<&str> = m.tests.iter().map(|t| t.test.as_str()).collect();
    assert_eq!(labels, ["pp24", "tg6", "tg6 @ d40"]);
    for t in &m.tests {
        assert_eq!(t.ts.samples.len(), 2, "{}", t.test);
        assert!(t.ts.samples.iter().all(|&x| x > 0.0), "{t:?}");
    }
    // SmolLM2-135M: 134.5 M parameters (tied embeddings counted once).
    assert!(
        (130_000_000..140_000_000).contains(&m.params),
        "{}",
        m.params
    );
    assert!(
        m.peak_memory_bytes >= m.size_bytes,
        "peak {} < weights {}",
        m.peak_memory_bytes,
        m.size_bytes
    );
    assert!(m.roofline_tps > 0.0 && m.efficiency > 0.0);
    assert_eq!(m.ttft_ms.samples.len(), 2);

    let batch = run.batch.as_ref().unwrap();
    assert_eq!(
        batch.points.iter().map(|p| p.batch).collect::<Vec<_>>(),
        [1, 3]
    );
    assert_eq!(batch.points[0].time_ratio, 1.0);
    assert_eq!(batch.points[1].work_ratio, 3.0);

    // Progress: steps count up to the announced total, and every sample was announced.
    let steps: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            Progress::Step { done, total, .. } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert!(steps.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(steps.iter().all(|(d, t)| d < t));
    let samples = events
        .iter()
        .filter(|e| matches!(e, Progress::Sample { .. }))
        .count();
    assert_eq!(samples, 2 * 2 + 2 + 2 * 2);
    assert!(events.iter().any(|e| matches!(e, Progress::ModelDone(_))));
    assert!(events.iter().any(|e| matches!(e, Progress::Machine(_))));

    // The same record goes into the history and out through the exporters.
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::open(&dir.path().join("bench.sqlite")).unwrap();
    let mut saved = run.clone();
    h.save(&mut saved).unwrap();
    assert_eq!(h.load(saved.id.unwrap()).unwrap().unwrap(), saved);
    assert_eq!(export::rows(&run).len(), 3 + 2);
}

#[test]
fn a_cancelled_suite_stops_with_cancelled() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let cancel = CancelToken::new();
    let c = cancel.clone();
    // Cancel as soon as the first timed sample arrives.
    let result = run_suite(&small(gguf), &cancel, &mut |p| {
        if matches!(p, Progress::Sample { .. }) {
            c.cancel();
        }
    });
    assert!(
        matches!(result, Err(BenchError::Cancelled)),
        "{:?}",
        result.map(|r| r.models.len())
    );
}

#[test]
fn a_missing_model_is_skipped_with_its_reason() {
    let config = SuiteConfig {
        bandwidth_elements: 1 << 16,
        batch_sizes: vec![],
        ..SuiteConfig::quick(vec!["/nonexistent/model.gguf".into()])
    };
    let run = run_suite(&config, &CancelToken::new(), &mut |_| {}).unwrap();
    assert!(run.models.is_empty());
    assert_eq!(run.skipped.len(), 1);
    assert!(run.skipped[0].contains("model.gguf"), "{:?}", run.skipped);
}
