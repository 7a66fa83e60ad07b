//! The server against real HTTP clients on loopback, with the default model: greedy text equal
//! to single-sequence generation, 16 concurrent streams each getting their alone text, a
//! disconnect freeing its slot, a full queue answering 429, and bad input answered with 4xx
//! JSON errors after which the server still answers.

use std::{net::SocketAddr, time::Duration};

use minibar_engine::{CancelToken, ChatParams, LoadOptions, Message, Session};
use minibar_serve::{Limits, ServeConfig, Server};
use minibar_testkit::default_gguf;
use serde_json::{json, Value};

const MODEL: &str = "smollm2";

/// The tests' server: `model` on a free loopback port, loaded at start, one sequence, a
/// 512-token context; each test changes what it is about.
fn config(model: &std::path::Path) -> ServeConfig {
    ServeConfig {
        context: Some(512),
        ..ServeConfig::local(
            model.to_owned(),
            MODEL.into(),
            Limits {
                max_seqs: 1,
                queue: 1,
            },
        )
    }
}

async fn serve(gguf: &std::path::Path, limits: Limits) -> Server {
    Server::start(ServeConfig {
        limits,
        ..config(gguf)
    })
    .await
    .expect("the server starts")
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url(addr, path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let text = reqwest::get(url(addr, path))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What `minibar generate` (Session::chat, one sequence) replies, greedily.
fn alone(gguf: &std::path::Path, prompts: &[String], max_tokens: usize) -> Vec<String> {
    let mut session = Session::open(gguf, &LoadOptions::default(), Some(512)).unwrap();
    let params = ChatParams {
        max_tokens,
        ..ChatParams::default()
    };
    prompts
        .iter()
        .map(|p| {
            session.reset();
            session
                .chat(
                    &[Message::user(p.clone())],
                    &params,
                    &CancelToken::new(),
                    |_| {},
                )
                .unwrap()
                .text
        })
        .collect()
}

/// Reads an SSE chat stream to `[DONE]`, returning the concatenated content.
async fn stream_chat(addr: SocketAddr, prompt: &str, max_tokens: usize) -> String {
    let body = json!({"model": MODEL, "stream": true, "temperature": 0, "max_tokens": max_tokens,
                      "messages": [{"role": "user", "content": prompt}]});
    let mut r = reqwest::Client::new()
        .post(url(addr, "/v1/chat/completions"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut raw = String::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        raw.push_str(&String::from_utf8_lossy(&chunk));
    }
    let datas: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(datas.last(), Some(&"[DONE]"), "the stream ends with [DONE]");
    datas[..datas.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn prompts(n: usize) -> Vec<String> {
    let topics = [
        "the sea",
        "a cat",
        "Paris",
        "rain",
        "music",
        "the moon",
        "bread",
        "a train",
        "winter",
        "a garden",
        "chess",
        "coffee",
        "mountains",
        "a library",
        "the wind",
        "fire",
    ];
    (0..n)
        .map(|i| format!("Write one sentence about {}.", topics[i % topics.len()]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_streams_each_get_their_alone_greedy_text() {
    let Some(gguf) = default_gguf() else { return };
    let prompts = prompts(16);
    let expected = alone(&gguf, &prompts, 24);
    let server = serve(
        &gguf,
        Limits {
            max_seqs: 16,
            queue: 64,
        },
    )
    .await;
    let addr = server.addr();

    // One request alone, non-streaming: the same text as `minibar generate`, with usage.
    let (status, v) = post(
        addr,
        "/v1/chat/completions",
        &json!({"model": MODEL, "temperature": 0,
        "max_tokens": 24, "messages": [{"role": "user", "content": prompts[0]}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], expected[0]);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let tasks: Vec<_> = prompts
        .iter()
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move { stream_chat(addr, &p, 24).await })
        })
        .collect();
    for (i, (task, want)) in tasks.into_iter().zip(&expected).enumerate() {
        assert_eq!(&task.await.unwrap(), want, "client {i}: {}", prompts[i]);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_frees_its_slot_and_a_full_queue_answers_429() {
    let Some(gguf) = default_gguf() else { return };
    let server = serve(
        &gguf,
        Limits {
            max_seqs: 1,
            queue: 1,
        },
    )
    .await;
    let addr = server.addr();
    // Counting goes on until max_tokens: A holds its slot until it leaves.
    let long = json!({"model": MODEL, "stream": true, "temperature": 0, "max_tokens": 400,
        "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"});
    let client = reqwest::Client::new();

    // A streams (it holds the only slot); B waits in the queue; C finds the queue full.
    let mut a = client
        .post(url(addr, "/v1/completions"))
        .body(long.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
    a.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(get(addr, "/metrics").await["active_sequences"], 1);
    let b = tokio::spawn({
        let client = client.clone();
        let body = long.to_string();
        async move {
            client
                .post(url(addr, "/v1/completions"))
                .body(body)
                .send()
                .await
        }
    });
    let mut waited = 0;
    while get(addr, "/metrics").await["queued_requests"] != 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 500, "B never queued");
    }
    let c = client
        .post(url(addr, "/v1/completions"))
        .body(long.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(c.status(), 429);
    assert!(c.headers().get("retry-after").is_some());
    let body: Value = serde_json::from_str(&c.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    // A disconnects mid-stream: its slot goes to B.
    drop(a);
    let mut b = b.await.unwrap().unwrap();
    assert_eq!(b.status(), 200);
    b.chunk().await.unwrap().expect("B streams once A left");
    drop(b);
    let mut waited = 0;
    loop {
        let m = get(addr, "/metrics").await;
        if m["active_sequences"] == 0 && m["queued_requests"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 500, "slots never freed: {m}");
    }
    let ps = get(addr, "/api/ps").await;
    assert_eq!(ps["models"][0]["active_sequences"], 0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_4xx_json_errors_and_the_server_answers_next() {
    let Some(gguf) = default_gguf() else { return };
    let server = serve(
        &gguf,
        Limits {
            max_seqs: 4,
            queue: 8,
        },
    )
    .await;
    let addr = server.addr();
    let chat = "/v1/chat/completions";
    let raw = |body: String| async move {
        let r = reqwest::Client::new()
            .post(url(addr, chat))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap(),
        )
    };
    let ok = json!({"model": MODEL, "temperature": 0, "max_tokens": 3,
                    "messages": [{"role": "user", "content": "Hi"}]});
    let long_prompt = "word ".repeat(600);
    let cases: Vec<(&str, u16, String)> = vec![
        ("malformed JSON", 400, "{\"model\": ".into()),
        (
            "wrong type",
            400,
            json!({"model": MODEL, "messages": "hello"}).to_string(),
        ),
        (
            "wrong sampling type",
            400,
            json!({"model": MODEL, "temperature": "hot",
            "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        ),
        (
            "unknown model",
            404,
            json!({"model": "no-such-model",
            "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        ),
        (
            "empty messages",
            400,
            json!({"model": MODEL, "messages": []}).to_string(),
        ),
        (
            "several choices",
            400,
            json!({"model": MODEL, "n": 2, "messages": [{"role": "user", "content": "Hi"}]})
                .to_string(),
        ),
        (
            "JSON mode without asking for JSON",
            400,
            json!({"model": MODEL, "response_format": {"type": "json_object"},
                   "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        ),
        (
            "unsupported response format",
            400,
            json!({"model": MODEL, "response_format": {"type": "json_schema"},
                   "messages": [{"role": "user", "content": "Hi, in JSON"}]})
            .to_string(),
        ),
        (
            "a schema llguidance cannot compile",
            400,
            json!({"model": MODEL, "response_format": {"type": "json_schema", "json_schema":
                       {"name": "x", "schema": {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}}},
                   "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        ),
        (
            "a tool without a name",
            400,
            json!({"model": MODEL, "tools": [{"type": "function", "function": {}}],
                   "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        ),
        (
            "a call required without tools",
            400,
            json!({"model": MODEL, "tool_choice": "required",
                   "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        ),
        (
            "a forced function that is not offered",
            400,
            json!({"model": MODEL,
                   "tool_choice": {"type": "function", "function": {"name": "g"}},
                   "tools": [{"type": "function", "function": {"name": "f"}}],
                   "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        ),
        (
            "an unknown tool_choice",
            400,
            json!({"model": MODEL, "tool_choice": "always",
                   "tools": [{"type": "function", "function": {"name": "f"}}],
                   "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        ),
        (
            "tool call arguments that are not JSON",
            400,
            json!({"model": MODEL, "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                    "function": {"name": "f", "arguments": "{oops"}}]},
                {"role": "tool", "tool_call_id": "a", "content": "1"}]})
            .to_string(),
        ),
        (
            "a catalog model that is not installed",
            404,
            json!({"model": "qwen3-235b-a22b",
            "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        ),
        (
            "10 MB body",
            413,
            format!(
                "{{\"model\": \"{MODEL}\", \"pad\": \"{}\"}}",
                "x".repeat(10 * 1024 * 1024)
            ),
        ),
        (
            "prompt over the context",
            400,
            json!({"model": MODEL,
            "messages": [{"role": "user", "content": long_prompt}]})
            .to_string(),
        ),
    ];
    for (what, status, body) in cases {
        let (got, v) = raw(body).await;
        assert_eq!(got, status, "{what}: {v}");
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {v}"));
        assert!(!message.is_empty(), "{what}");
        if what == "a catalog model that is not installed" {
            assert!(
                message.contains("minibar pull qwen3-235b-a22b"),
                "{message}"
            );
            assert_eq!(v["error"]["code"], "model_not_found");
        }
        if what == "a forced function that is not offered" {
            assert!(
                message.contains("\"g\"") && message.contains('f'),
                "{message}"
            );
        }
        if what == "a schema llguidance cannot compile" {
            assert!(
                message.contains("llguidance") && message.contains("nowhere"),
                "{message}"
            );
        }
        if what == "prompt over the context" {
            assert!(message.contains("512"), "{message}");
            assert_eq!(v["error"]["code"], "context_length_exceeded");
        }
        let (after, v) = post(addr, chat, &ok).await;
        assert_eq!(after, 200, "after {what}: {v}");
    }
    let (status, v) = post(addr, "/v1/nothing", &json!({})).await;
    assert_eq!(status, 404, "{v}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_stop_seed_usage_and_the_ollama_api() {
    let Some(gguf) = default_gguf() else { return };
    let server = serve(
        &gguf,
        Limits {
            max_seqs: 4,
            queue: 8,
        },
    )
    .await;
    let addr = server.addr();

    // Completions: raw text, the 16-token default, usage.
    let (status, v) = post(
        addr,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "The capital of France is", "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 16);
    let text = v["choices"][0]["text"].as_str().unwrap().to_owned();
    assert!(!text.is_empty());

    // A stop string cuts the text before it.
    let first_word = text.split_whitespace().next().unwrap().to_owned();
    let (_, v) = post(
        addr,
        "/v1/completions",
        &json!({"model": MODEL,
        "prompt": "The capital of France is", "temperature": 0, "stop": [first_word]}),
    )
    .await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(
        !v["choices"][0]["text"]
            .as_str()
            .unwrap()
            .contains(&first_word),
        "{v}"
    );

    // The same seed gives the same sampled text.
    let seeded = json!({"model": MODEL, "temperature": 1.0, "top_p": 0.95, "seed": 7,
        "max_tokens": 20, "messages": [{"role": "user", "content": "Tell me a story."}]});
    let (_, one) = post(addr, "/v1/chat/completions", &seeded).await;
    let (_, two) = post(addr, "/v1/chat/completions", &seeded).await;
    assert_eq!(one["choices"][0]["message"], two["choices"][0]["message"]);

    // Streaming usage comes last, before [DONE].
    let body = json!({"model": MODEL, "stream": true, "temperature": 0, "max_tokens": 5,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hi"}]});
    let raw = reqwest::Client::new()
        .post(url(addr, "/v1/chat/completions"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let datas: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    let usage: Value = serde_json::from_str(datas[datas.len() - 2]).unwrap();
    assert!(
        usage["usage"]["total_tokens"].as_u64().unwrap() > 5,
        "{usage}"
    );

    // Ollama: chat streams NDJSON ending with done; generate without streaming; version.
    let chat = reqwest::Client::new()
        .post(url(addr, "/api/chat"))
        .body(
            json!({"model": MODEL, "options": {"temperature": 0, "num_predict": 8},
            "messages": [{"role": "user", "content": "Hi"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = chat
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2);
    assert_eq!(lines.last().unwrap()["done"], true);
    assert_eq!(lines.last().unwrap()["eval_count"], 8);
    let streamed: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    let (status, v) = post(
        addr,
        "/api/generate",
        &json!({"model": MODEL, "prompt": "Hi",
        "stream": false, "options": {"temperature": 0, "num_predict": 8}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["response"],
        streamed.as_str(),
        "generate = chat for one user message"
    );
    assert!(get(addr, "/api/version").await["version"].is_string());
    let (status, show) = post(addr, "/api/show", &json!({"model": MODEL})).await;
    assert_eq!(status, 200, "{show}");
    assert_eq!(show["model_info"]["general.context_length"], 512);
    let (status, _) = post(addr, "/api/show", &json!({"model": "other"})).await;
    assert_eq!(status, 404);
    assert!(get(addr, "/api/tags").await["models"].is_array());
    let models = get(addr, "/v1/models").await;
    assert_eq!(models["data"][0]["id"], MODEL);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_taken_port_is_refused_at_once_naming_who_holds_it() {
    // No model is needed: the port is checked before anything loads.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let started = Server::start(ServeConfig {
        addr,
        ..config("no-such-model.gguf".as_ref())
    })
    .await;
    let Err(e) = started else {
        panic!("a second server started on a taken port")
    };
    let message = e.to_string();
    assert!(
        matches!(e, minibar_serve::ServeError::PortTaken { .. }),
        "{message}"
    );
    assert!(
        message.contains(&addr.to_string()) && message.contains("--port"),
        "{message}"
    );
    if cfg!(target_os = "linux") {
        // This test process holds it; /proc says so.
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
    }
}

#[tokio::test]
async fn off_loopback_a_key_is_required() {
    let Some(gguf) = default_gguf() else { return };
    let config = ServeConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..config(&gguf)
    };
    assert!(matches!(
        Server::start(config.clone()).await,
        Err(minibar_serve::ServeError::KeyRequired(_))
    ));
    let server = Server::start(ServeConfig {
        api_key: Some("s3cret-key".into()),
        ..config
    })
    .await
    .unwrap();
    let at = format!("http://127.0.0.1:{}/v1/models", server.addr().port());
    let client = reqwest::Client::new();
    for key in [
        None,
        Some("Bearer wrong"),
        Some("s3cret-key"),
        Some("Bearer s3cret-ke"),
    ] {
        let mut r = client.get(&at);
        if let Some(k) = key {
            r = r.header("authorization", k);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{key:?}");
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key");
    }
    let r = client
        .get(&at)
        .header("authorization", "Bearer s3cret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_model_that_cannot_fit_is_refused_before_loading() {
    // Llama 3.1 405B's shape in bf16 (~800 GB): the fit verdict refuses it before the loader
    // would look for weights (there are none, which would be a load error instead).
    let dir = std::env::temp_dir().join(format!("minibar-serve-fit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let huge = json!({"model_type": "llama", "hidden_size": 16384,
        "intermediate_size": 53248, "num_hidden_layers": 126, "num_attention_heads": 128,
        "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
        "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "tie_word_embeddings": false});
    std::fs::write(dir.join("config.json"), huge.to_string()).unwrap();
    let started = Server::start(ServeConfig {
        model_name: "huge".into(),
        context: None,
        ..config(&dir)
    })
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    match started {
        Err(minibar_serve::ServeError::WontFit(reason)) => assert!(!reason.is_empty()),
        Err(e) => panic!("expected a fit refusal, got: {e}"),
        Ok(_) => panic!("a 405B bf16 model was loaded"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_prompt_joins_running_streams_between_steps() {
    let Some(gguf) = default_gguf() else { return };
    // Over one prefill chunk (256 tokens), so it is prefilled a chunk per decode step.
    let long = format!(
        "{} Now say in one sentence what the text above is about.",
        "The river ran past the old mill where the children played. ".repeat(30)
    );
    let short = "Write one sentence about the sea.".to_owned();
    let expected = alone(&gguf, &[short.clone(), long.clone()], 40);
    let server = serve(
        &gguf,
        Limits {
            max_seqs: 4,
            queue: 8,
        },
    )
    .await;
    let addr = server.addr();
    let first = tokio::spawn(async move { stream_chat(addr, &short, 40).await });
    // Let the short one start decoding before the long one arrives.
    let mut waited = 0;
    while get(addr, "/metrics").await["active_sequences"] != 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
        assert!(waited < 1000, "the first stream never started");
    }
    let second = stream_chat(addr, &long, 40).await;
    assert_eq!(first.await.unwrap(), expected[0]);
    assert_eq!(second, expected[1]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn cross_origin_calls_only_from_the_origins_allowed() {
    let Some(gguf) = default_gguf() else { return };
    let start = |cors_origins: Vec<String>| {
        Server::start(ServeConfig {
            preload: false,
            cors_origins,
            ..config(&gguf)
        })
    };
    let client = reqwest::Client::new();
    // The browser's preflight for a JSON POST, and the simple GET that follows it.
    let allowed_for = |addr: SocketAddr, origin: &'static str| {
        let client = client.clone();
        async move {
            let preflight = client
                .request(reqwest::Method::OPTIONS, url(addr, "/v1/chat/completions"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .send()
                .await
                .unwrap();
            let get = client
                .get(url(addr, "/v1/models"))
                .header("origin", origin)
                .send()
                .await
                .unwrap();
            assert_eq!(get.status(), 200);
            let allow = |r: &reqwest::Response| {
                r.headers()
                    .get("access-control-allow-origin")
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            (allow(&preflight), allow(&get))
        }
    };

    let closed = start(Vec::new()).await.unwrap();
    assert_eq!(
        allowed_for(closed.addr(), "http://localhost:3000").await,
        (None, None),
        "no origin is allowed unless named"
    );
    closed.stop().await.unwrap();

    let open = start(vec!["http://localhost:3000".into()]).await.unwrap();
    let mine = Some("http://localhost:3000".to_owned());
    assert_eq!(
        allowed_for(open.addr(), "http://localhost:3000").await,
        (mine.clone(), mine)
    );
    assert_eq!(
        allowed_for(open.addr(), "http://evil.example").await,
        (None, None)
    );
    open.stop().await.unwrap();

    assert!(matches!(
        start(vec!["localhost:3000".into()]).await,
        Err(minibar_serve::ServeError::BadOrigin(_))
    ));
}

#[tokio::test]
async fn a_conversations_next_turn_prefills_only_what_is_new() {
    let Some(gguf) = default_gguf() else { return };
    let server = serve(
        &gguf,
        Limits {
            max_seqs: 4,
            queue: 8,
        },
    )
    .await;
    let addr = server.addr();
    let ask = |messages: Value| {
        let body =
            json!({"model": MODEL, "temperature": 0, "max_tokens": 16, "messages": messages});
        async move {
            let (status, v) = post(addr, "/v1/chat/completions", &body).await;
            assert_eq!(status, 200, "{v}");
            let cached = v["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap();
            let prompt = v["usage"]["prompt_tokens"].as_u64().unwrap();
            let text = v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned();
            (text, prompt, cached)
        }
    };
    let first = "Write one sentence about the sea.";
    let (reply, prompt, cached) = ask(json!([{"role": "user", "content": first}])).await;
    assert_eq!(cached, 0, "nothing to reuse before the first request");
    let next = "Now one about rain.";
    let (again, _, cached) = ask(json!([{"role": "user", "content": first},
        {"role": "assistant", "content": reply}, {"role": "user", "content": next}]))
    .await;
    assert!(
        cached >= prompt,
        "the first turn's {prompt} prompt tokens are reused, not {cached}"
    );

    // The same text as one sequence prefilled from nothing.
    let mut session = Session::open(&gguf, &LoadOptions::default(), Some(512)).unwrap();
    let params = ChatParams {
        max_tokens: 16,
        ..ChatParams::default()
    };
    let history = [
        Message::user(first.to_owned()),
        Message::assistant(reply.clone()),
        Message::user(next.to_owned()),
    ];
    let want = session
        .chat(&history, &params, &CancelToken::new(), |_| {})
        .unwrap()
        .text;
    assert_eq!(again, want);
    server.stop().await.unwrap();
}
