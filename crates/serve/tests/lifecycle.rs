//! Model lifecycle: a request naming another model of the library loads it in place of the
//! running one, an idle model is unloaded after the keep-alive time and loads again on the
//! next request. Its own test binary: it points MINIBAR_HOME at a temporary library.

use std::time::Duration;

use minibar_serve::{Limits, ServeConfig, Server};
use minibar_testkit::default_gguf;
use serde_json::{json, Value};

async fn chat(base: &str, model: &str) -> (u16, Value) {
    let body = json!({"model": model, "temperature": 0, "max_tokens": 12,
                      "messages": [{"role": "user", "content": "Name a colour."}]});
    post(base, "/v1/chat/completions", body).await
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

async fn loaded(base: &str) -> Vec<String> {
    let text = reqwest::get(format!("{base}/api/ps"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_load_on_request_and_unload_when_idle() {
    let Some(gguf) = default_gguf() else { return };
    // A library with one more model: the same weights under another name.
    let home = std::env::temp_dir().join(format!("minibar-serve-life-{}", std::process::id()));
    let other = home.join("models/smol-copy");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&gguf, other.join("model.gguf")).unwrap();
    // The catalog's smollm2-360m, as far as names go (the same small weights, linked).
    let named = home.join("models/SmolLM2-360M-Instruct-test");
    std::fs::create_dir_all(&named).unwrap();
    std::fs::hard_link(other.join("model.gguf"), named.join("model.gguf"))
        .or_else(|_| std::fs::copy(&gguf, named.join("model.gguf")).map(|_| ()))
        .unwrap();
    std::env::set_var("MINIBAR_HOME", &home);
    std::env::set_var("HF_HUB_CACHE", home.join("hub"));

    let server = Server::start(ServeConfig {
        context: Some(256),
        keep_alive: Duration::from_secs(2),
        ..ServeConfig::local(
            gguf,
            "smollm2".into(),
            Limits {
                max_seqs: 2,
                queue: 4,
            },
        )
    })
    .await
    .unwrap();
    let base = format!("http://{}", server.addr());
    assert_eq!(loaded(&base).await, ["smollm2"]);
    let (status, first) = chat(&base, "smollm2").await;
    assert_eq!(status, 200, "{first}");

    // Naming the other model swaps it in; same weights, same greedy reply.
    let (status, swapped) = chat(&base, "smol-copy").await;
    assert_eq!(status, 200, "{swapped}");
    assert_eq!(swapped["model"], "smol-copy");
    assert_eq!(
        swapped["choices"][0]["message"],
        first["choices"][0]["message"]
    );
    assert_eq!(loaded(&base).await, ["smol-copy"]);

    // Idle past the keep-alive: unloaded; the next request loads its model again.
    let mut waited = 0;
    while !loaded(&base).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(waited < 100, "the idle model was never unloaded");
    }
    let (status, again) = chat(&base, "smollm2").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["choices"][0]["message"],
        first["choices"][0]["message"]
    );
    assert_eq!(loaded(&base).await, ["smollm2"]);

    // Ollama's explicit unload (no prompt, keep_alive 0) and load (no prompt).
    let (status, v) = post(
        &base,
        "/api/generate",
        json!({"model": "smollm2", "keep_alive": 0}),
    )
    .await;
    assert_eq!(
        (status, v["done_reason"].as_str()),
        (200, Some("unload")),
        "{v}"
    );
    let mut waited = 0;
    while !loaded(&base).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        assert!(waited < 100, "keep_alive 0 never unloaded the model");
    }
    let (status, v) = post(
        &base,
        "/api/chat",
        json!({"model": "smol-copy", "keep_alive": "1h"}),
    )
    .await;
    assert_eq!(
        (status, v["done_reason"].as_str()),
        (200, Some("load")),
        "{v}"
    );
    assert_eq!(loaded(&base).await, ["smol-copy"]);

    // A catalog id names the installed model its entry describes: the default model's file
    // for smollm2-135m, the library folder for smollm2-360m; one not installed says how to
    // get it.
    let (status, v) = chat(&base, "smollm2-135m").await;
    assert_eq!((status, v["model"].as_str()), (200, Some("smollm2")), "{v}");
    let (status, v) = chat(&base, "smollm2-360m").await;
    assert_eq!(
        (status, v["model"].as_str()),
        (200, Some("SmolLM2-360M-Instruct-test")),
        "{v}"
    );
    let (status, v) = chat(&base, "smollm2-1.7b").await;
    assert_eq!(status, 404, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("minibar pull smollm2-1.7b"), "{message}");
    // Ollama's routes answer in Ollama's shape.
    let (status, v) = post(
        &base,
        "/api/chat",
        json!({"model": "smollm2-1.7b",
        "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("minibar pull"), "{v}");

    let (status, v) = chat(&base, "not-in-the-library").await;
    assert_eq!(status, 404, "{v}");
    server.stop().await.unwrap();
    std::fs::remove_dir_all(&home).unwrap();
}

static CRITICAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stands in for the OS: critical once the test says so.
fn fake_pressure() -> minibar_fit::Pressure {
    if CRITICAL.load(std::sync::atomic::Ordering::SeqCst) {
        minibar_fit::Pressure::Critical
    } else {
        minibar_fit::Pressure::Normal
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_model_is_unloaded_under_critical_memory_pressure() {
    let Some(gguf) = default_gguf() else { return };
    let server = Server::start(ServeConfig {
        context: Some(256),
        keep_alive: Duration::from_secs(3600),
        pressure: fake_pressure,
        ..ServeConfig::local(
            gguf,
            "smollm2".into(),
            Limits {
                max_seqs: 1,
                queue: 4,
            },
        )
    })
    .await
    .unwrap();
    let base = format!("http://{}", server.addr());
    let (status, _) = chat(&base, "smollm2").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(loaded(&base).await, ["smollm2"], "no pressure: it stays");
    CRITICAL.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut waited = 0;
    while !loaded(&base).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(
            waited < 100,
            "the idle model stayed loaded under critical pressure"
        );
    }
    CRITICAL.store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, v) = chat(&base, "smollm2").await;
    assert_eq!(status, 200, "{v}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_server_has_loaded_cannot_be_deleted_until_unloaded() {
    let Some(gguf) = default_gguf() else { return };
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("models/served");
    std::fs::create_dir_all(&folder).unwrap();
    let model = folder.join("model.gguf");
    std::fs::hard_link(&gguf, &model)
        .or_else(|_| std::fs::copy(&gguf, &model).map(|_| ()))
        .unwrap();
    let library = minibar_serve::LibraryPaths::new(home.path().join("hub"), home.path());
    let server = Server::start(ServeConfig {
        library: library.clone(),
        context: Some(256),
        keep_alive: Duration::from_secs(3600),
        ..ServeConfig::local(
            model.clone(),
            "served".into(),
            Limits {
                max_seqs: 1,
                queue: 4,
            },
        )
    })
    .await
    .unwrap();
    let base = format!("http://{}", server.addr());

    // What `minibar rm` and the app's delete call.
    let refused = minibar_hub::library::remove_model(&library, "served").unwrap_err();
    assert!(
        refused.to_string().contains("in use by the local server"),
        "{refused}"
    );
    assert!(model.is_file());

    let (status, v) = post(
        &base,
        "/api/generate",
        json!({"model": "served", "keep_alive": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let mut waited = 0;
    while !loaded(&base).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        assert!(waited < 100, "keep_alive 0 never unloaded the model");
    }
    minibar_hub::library::remove_model(&library, "served").unwrap();
    assert!(!folder.exists());
    server.stop().await.unwrap();
}
