//! `minibar serve --cluster`: the model of a cluster that is up (2 ranks on loopback), served
//! through the same routes, answers greedy chat requests, streamed or not, with the text and
//! usage of a local server of the same model; stop strings cut it the same way; a request
//! that needs each token constrained (JSON mode) is refused with a 400 that says why; a rank
//! killed mid-reply ends that reply with an error naming it, and the server answers on once
//! the cluster has formed again.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use minibar_serve::{Limits, ServeConfig, Server};
use minibar_testkit::KillOnDrop as Killed;
use serde_json::{json, Value};

fn minibar() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_minibar"));
    c.env_remove("MINIBAR_MODEL");
    c
}

/// Starts `minibar serve --cluster socket` on a free port; its address, from the line it
/// prints once it serves.
fn serve_cluster(socket: &Path) -> (Killed, SocketAddr) {
    let mut child = minibar()
        .args(["serve", "--port", "0", "--cluster"])
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut child = Killed(child);
    let mut said = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("serving on http://") {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (child, addr);
        }
        said.push_str(&line);
        said.push('\n');
    }
    let status = child.0.wait().unwrap();
    panic!("minibar serve --cluster ended ({status}) before serving:\n{said}");
}

async fn local_server(gguf: &Path, name: &str) -> Server {
    Server::start(ServeConfig::local(
        gguf.to_owned(),
        name.into(),
        Limits {
            max_seqs: 4,
            queue: 8,
        },
    ))
    .await
    .expect("the local server starts")
}

/// A chat completion request to the server at `addr`, sent.
async fn send_chat(addr: SocketAddr, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn post(addr: SocketAddr, body: &Value) -> (u16, String) {
    let r = send_chat(addr, body).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let text = reqwest::get(format!("http://{addr}{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Prompt, completion and total tokens of a usage (not the cached ones: the local server
/// reuses the last request's caches, the cluster does not).
fn counts(usage: &Value) -> [u64; 3] {
    ["prompt_tokens", "completion_tokens", "total_tokens"].map(|k| usage[k].as_u64().unwrap())
}

/// The pid of `up`'s rank `rank` (its child with that `MLX_RANK`).
fn rank_pid(up: &Killed, rank: usize) -> u32 {
    let want = format!("MLX_RANK={rank}");
    let tasks = format!("/proc/{}/task", up.0.id());
    std::fs::read_dir(&tasks)
        .unwrap()
        .flatten()
        .flat_map(|t| {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .unwrap_or_default()
                .split(|&b| b == 0)
                .any(|v| v == want.as_bytes())
        })
        .unwrap_or_else(|| panic!("no child of cluster up has {want}"))
}

/// Streams a long reply and kills rank 1 once it has begun; the stream's error.
async fn killed_mid_reply(addr: SocketAddr, up: &Killed, model: &str) -> String {
    let body = json!({
        "model": model, "temperature": 0, "max_tokens": 400, "stream": true,
        "messages": [{"role": "user", "content": "Count from 1 to 200, separated by commas."}],
    });
    let mut r = send_chat(addr, &body).await;
    assert_eq!(r.status().as_u16(), 200);
    let (mut text, mut chunks) = (String::new(), 0);
    while let Some(chunk) = r.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        chunks += 1;
        if chunks == 3 {
            let pid = rank_pid(up, 1).to_string();
            assert!(Command::new("kill")
                .args(["-9", &pid])
                .status()
                .unwrap()
                .success());
        }
    }
    let error = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find_map(|v| v["error"]["message"].as_str().map(str::to_owned));
    error.unwrap_or_else(|| panic!("the reply ended without an error:\n{text}"))
}

/// A reply's text, finish reason and token counts, non-streamed or gathered from the stream.
async fn reply(addr: SocketAddr, body: &Value) -> (String, String, [u64; 3]) {
    let (status, text) = post(addr, body).await;
    assert_eq!(status, 200, "{text}");
    if body["stream"] != json!(true) {
        let v: Value = serde_json::from_str(&text).unwrap();
        let choice = &v["choices"][0];
        let content = choice["message"]["content"].as_str().unwrap().to_owned();
        let finish = choice["finish_reason"].as_str().unwrap().to_owned();
        return (content, finish, counts(&v["usage"]));
    }
    let (mut content, mut finish, mut usage) = (String::new(), String::new(), Value::Null);
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    for event in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(event).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        if let Some(choice) = v["choices"].get(0) {
            content.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = f.to_owned();
            }
        }
        if !v["usage"].is_null() {
            usage = v["usage"].clone();
        }
    }
    (content, finish, counts(&usage))
}

#[test]
fn a_clusters_model_is_served_as_a_local_server_serves_it() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cluster.sock");
    let mut up = Killed(
        minibar()
            .args(["cluster", "up", "--ranks", "2", "-m"])
            .arg(&gguf)
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    up.wait_for_socket(&socket);
    let (_serve, addr) = serve_cluster(&socket);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // The cluster's model, by its file's name, is the one model listed and loaded.
        let name = gguf.file_stem().unwrap().to_str().unwrap().to_owned();
        let models = get(addr, "/v1/models").await;
        assert_eq!(models["data"].as_array().unwrap().len(), 1, "{models}");
        assert_eq!(models["data"][0]["id"], json!(name), "{models}");
        for path in ["/api/tags", "/api/ps"] {
            let listed = get(addr, path).await;
            assert_eq!(listed["models"][0]["name"], json!(name), "{path}: {listed}");
        }

        let local = local_server(&gguf, &name).await;
        let ask = |stream: bool, stop: Option<&str>| {
            json!({
                "model": name, "temperature": 0, "max_tokens": 16, "stream": stream,
                "stream_options": {"include_usage": true}, "stop": stop,
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
            })
        };
        let (one, finish, usage) = reply(local.addr(), &ask(false, None)).await;
        assert!(one.contains("Paris"), "{one}");
        assert!(usage[0] > 5 && usage[1] > 0, "{usage:?}");
        // Over the cluster, streamed or not: the same text, finish and usage.
        for stream in [false, true] {
            let got = reply(addr, &ask(stream, None)).await;
            assert_eq!(
                got,
                (one.clone(), finish.clone(), usage),
                "stream: {stream}"
            );
        }
        // A stop string is the server's own: the text ends before it, as locally, and the
        // cluster's job stops there.
        let (cut, cut_finish, cut_usage) = reply(addr, &ask(false, Some("Paris"))).await;
        assert_eq!(
            (cut.as_str(), cut_finish.as_str()),
            (one[..one.find("Paris").unwrap()].as_ref(), "stop")
        );
        assert_eq!(
            (cut.clone(), cut_finish, cut_usage),
            reply(local.addr(), &ask(false, Some("Paris"))).await
        );

        // JSON mode constrains each token, which the cluster's last rank samples: refused.
        let mut json_mode = ask(false, None);
        json_mode["response_format"] = json!({"type": "json_object"});
        json_mode["messages"][0]["content"] = json!("Reply in JSON: the capital of France?");
        let (status, body) = post(addr, &json_mode).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("cluster"), "{body}");
        // Ollama's format "json" too, in Ollama's error shape.
        let r = reqwest::Client::new()
            .post(format!("http://{addr}/api/chat"))
            .body(
                json!({"model": name, "format": "json", "stream": false,
                       "messages": [{"role": "user", "content": "The capital of France, in JSON?"}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(body["error"].as_str().unwrap().contains("cluster"), "{body}");
        // ... and the server answers on.
        assert_eq!(reply(addr, &ask(false, None)).await.0, one);
        local.stop().await.unwrap();

        // A rank killed mid-reply: the reply ends with the cluster's error, naming the node.
        let error = killed_mid_reply(addr, &up, &name).await;
        assert!(error.contains("rank 1 (127.0.0.1:"), "{error}");
        // The server answers on: 503 while the cluster forms again, then the same text.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, body) = post(addr, &ask(false, None)).await;
            if status == 200 {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["choices"][0]["message"]["content"], json!(one));
                break;
            }
            assert_eq!(status, 503, "{body}");
            assert!(
                Instant::now() < deadline,
                "the cluster did not form again: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
