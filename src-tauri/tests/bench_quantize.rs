//! The benchmark and quantization commands on the real default model (`MINIBAR_DEFAULT_GGUF`):
//! a quick benchmark runs on the engine thread, is stored in the CLI's history (under the
//! sandbox's `MINIBAR_HOME`), listed and exported; a quantization writes a new model into the store that shows up installed and
//! loads. Skipped without the model unless `MINIBAR_REQUIRE_REFERENCE` is set.

mod common;

use std::sync::{Mutex, MutexGuard};

use common::{app_with_sandbox, default_gguf, next_slow, sandbox_with, TestApp, MODEL};
use serde_json::{json, Value};

/// MLX work from two apps' engine threads at once would only slow both down: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn app_with_default_model() -> Option<(TestApp, MutexGuard<'static, ()>)> {
    let gguf = default_gguf()?;
    let guard = serial();
    sandbox_with(Some(&gguf));
    Some((app_with_sandbox(None), guard))
}

/// The stored runs, oldest first.
fn runs(t: &TestApp) -> Vec<Value> {
    let list = t.call("list_bench_runs", json!({})).unwrap();
    list.as_array().unwrap().clone()
}

fn mean(v: &Value) -> f64 {
    v["mean"].as_f64().unwrap()
}

#[test]
fn a_quick_benchmark_is_stored_listed_and_exported() {
    let Some((t, _serial)) = app_with_default_model() else {
        return;
    };
    // The sandbox's history is shared by this binary's tests (run one at a time).
    let before = runs(&t).len();
    let progress = t.listen("bench-progress");
    let finished = t.listen("bench-finished");
    let run_id = t
        .call("start_benchmark", json!({ "mode": "quick" }))
        .unwrap();
    let again = t
        .call("start_benchmark", json!({ "mode": "quick" }))
        .unwrap_err();
    assert_eq!(again["kind"], "invalid_input", "one run at a time");

    let end = next_slow(&finished);
    assert_eq!(end["runId"], run_id);
    assert_eq!(end["status"], "done", "{end}");
    let run = &end["run"];

    // Progress came step by step, with live samples.
    let events: Vec<Value> = progress.try_iter().collect();
    assert!(events.iter().all(|e| e["runId"] == run_id));
    let fractions: Vec<f64> = events
        .iter()
        .map(|e| e["fraction"].as_f64().unwrap())
        .collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    assert!(fractions.iter().all(|f| (0.0..=1.0).contains(f)));
    assert!(events
        .iter()
        .any(|e| e["lastSample"]["tokensPerSecond"].as_f64() > Some(0.0)));

    // The default model's figures.
    assert_eq!(run["mode"], "quick");
    assert_eq!(run["defaultModel"], MODEL);
    let models = run["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "quick mode runs the default model alone");
    let m = &models[0];
    assert_eq!(m["variantId"], MODEL);
    assert!(mean(&m["pp512"]) > 0.0, "{m}");
    assert!(mean(&m["tg128"]) > 0.0, "{m}");
    assert_eq!(m["pp512"]["n"], 2);
    assert!(m["rooflineTps"].as_f64().unwrap() > 0.0);
    assert!(m["peakMemoryBytes"].as_u64().unwrap() > 0);
    let batch: Vec<u64> = run["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(batch, [1, 4, 16]);
    assert!(run["machine"]["bandwidthGBs"].as_f64().unwrap() > 0.0);

    // Stored where `minibar bench` keeps its runs (the sandbox's MINIBAR_HOME), listed, read
    // back whole.
    let home = std::path::PathBuf::from(std::env::var_os("MINIBAR_HOME").unwrap());
    assert_eq!(
        minibar_bench::History::default_path(),
        home.join("bench.sqlite")
    );
    assert!(!t.data_dir.join("bench.sqlite").exists());
    let cli = minibar_bench::History::open(&minibar_bench::History::default_path()).unwrap();
    let stored = cli
        .latest()
        .unwrap()
        .expect("the CLI's history has the run");
    assert_eq!(
        stored.id.map(|id| id.to_string()),
        run["id"].as_str().map(String::from)
    );
    let list = runs(&t);
    assert_eq!(list.len(), before + 1);
    let last = list.last().unwrap();
    assert_eq!(last["id"], run["id"]);
    assert_eq!(last["pp512"], m["pp512"]["mean"]);
    assert_eq!(last["tg128"], m["tg128"]["mean"]);
    let got = t.call("get_bench_run", json!({ "id": run["id"] })).unwrap();
    assert_eq!(&got, run);

    // Exports in llama-bench's shapes.
    let export = |format: &str| {
        t.call(
            "export_bench_run",
            json!({ "id": run["id"], "format": format }),
        )
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
    };
    let rows: Vec<Value> = serde_json::from_str(&export("json")).unwrap();
    let row = |test: &str| {
        rows.iter()
            .find(|r| r["test"] == test)
            .unwrap_or_else(|| panic!("no {test} row"))
    };
    assert_eq!(row("pp512")["avg_ts"], m["pp512"]["mean"]);
    assert_eq!(row("tg128")["avg_ts"], m["tg128"]["mean"]);
    assert_eq!(row("pp512")["n_prompt"], 512);
    let csv = export("csv");
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .contains("model_filename,model_type,model_size,model_n_params"));
    assert_eq!(csv.lines().count(), 1 + rows.len());
    let md = export("markdown");
    assert!(md.starts_with("| model | size | params | backend | threads | test | t/s |"));
    assert!(md.contains("| pp512 |") && md.contains("| tg128 |"));

    let err = t.call("get_bench_run", json!({ "id": "999" })).unwrap_err();
    assert_eq!(err["kind"], "not_found");
}

#[test]
fn a_cancelled_benchmark_stores_nothing() {
    let Some((t, _serial)) = app_with_default_model() else {
        return;
    };
    let before = runs(&t);
    let progress = t.listen("bench-progress");
    let finished = t.listen("bench-finished");
    let run_id = t
        .call("start_benchmark", json!({ "mode": "quick" }))
        .unwrap();
    // The first step (memory bandwidth) has begun: cancel the run.
    next_slow(&progress);
    t.call("cancel_benchmark", json!({ "runId": run_id }))
        .unwrap();
    let end = next_slow(&finished);
    assert_eq!(end["runId"], run_id);
    assert_eq!(end["status"], "cancelled");
    assert!(end["run"].is_null());
    assert_eq!(runs(&t), before);
    let err = t
        .call("cancel_benchmark", json!({ "runId": run_id }))
        .unwrap_err();
    assert_eq!(err["kind"], "not_found", "the run is over");
}

/// Waits for the end of a quantization, returning every event.
fn quantize_events(rx: &std::sync::mpsc::Receiver<Value>) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let e = next_slow(rx);
        let running = e["state"] == "running";
        seen.push(e);
        if !running {
            return seen;
        }
    }
}

#[test]
fn quantizing_the_default_model_installs_a_model_that_loads() {
    let Some((t, _serial)) = app_with_default_model() else {
        return;
    };
    let rx = t.listen("quantize-progress");
    let err = t
        .call(
            "quantize_model",
            json!({ "request": { "sourceVariantId": MODEL, "bits": 7, "groupSize": 64 } }),
        )
        .unwrap_err();
    assert_eq!(err["kind"], "invalid_input");

    let id = t
        .call(
            "quantize_model",
            json!({ "request": { "sourceVariantId": MODEL, "bits": 8, "groupSize": 32 } }),
        )
        .unwrap();
    assert_eq!(id, "smollm2-135m@8bit-g32");
    let events = quantize_events(&rx);
    let end = events.last().unwrap();
    assert_eq!(end["state"], "done", "{end}");
    assert_eq!(end["variantId"], id);
    let fractions: Vec<f64> = events
        .iter()
        .map(|e| e["fraction"].as_f64().unwrap())
        .collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    assert!(events.len() > 2, "progress along the way: {events:?}");

    // The new variant is installed in the catalog and its folder loads, quantized as asked.
    let catalog = t.call("list_catalog", json!({})).unwrap();
    let variant = catalog
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["variants"].as_array().unwrap())
        .find(|v| v["id"] == id)
        .expect("the new variant is listed");
    assert_eq!(variant["installed"], true);
    let store = minibar_hub::library::LibraryPaths::from_env().store;
    let folder = store.join("SmolLM2-135M-Instruct.Q4_1-8bit-g32");
    let loaded = minibar_engine::load(&folder, &minibar_engine::LoadOptions::default())
        .expect("the quantized model loads");
    let q = loaded.model.args.quantization.as_ref().expect("quantized");
    assert_eq!((&q["bits"], &q["group_size"]), (&json!(8), &json!(32)));
    // No expanded weights were left behind.
    let hidden: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    let again = t
        .call(
            "quantize_model",
            json!({ "request": { "sourceVariantId": MODEL, "bits": 8, "groupSize": 32 } }),
        )
        .unwrap_err();
    assert_eq!(again["kind"], "invalid_input", "already installed");
}

#[test]
fn a_cancelled_quantization_leaves_nothing() {
    let Some((t, _serial)) = app_with_default_model() else {
        return;
    };
    let rx = t.listen("quantize-progress");
    let id = t
        .call(
            "quantize_model",
            json!({ "request": { "sourceVariantId": MODEL, "bits": 4, "groupSize": 128 } }),
        )
        .unwrap();
    // Cancelled before the engine thread gets to it: it stops after the first pass at most.
    t.call("cancel_quantize", json!({ "variantId": id }))
        .unwrap();
    let end = quantize_events(&rx).pop().unwrap();
    assert_eq!(end["state"], "cancelled", "{end}");
    let store = minibar_hub::library::LibraryPaths::from_env().store;
    let left: Vec<_> = std::fs::read_dir(&store)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("4bit-g128"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
