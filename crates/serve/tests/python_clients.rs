//! The real `openai` and `ollama` Python packages (in the reference environment) against the
//! server on loopback (tests/clients.py asserts what they see), and their greedy replies equal
//! to single-sequence generation (what `minibar generate` prints).

use std::path::PathBuf;

use minibar_engine::{CancelToken, ChatParams, LoadOptions, Message, Session};
use minibar_serve::{Limits, ServeConfig, Server};

const MODEL: &str = "smollm2";
const PROMPT: &str = "What is the capital of France? Answer in one sentence.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_and_ollama_python_clients() {
    let (Some(gguf), Some(python)) = (
        minibar_testkit::default_gguf(),
        minibar_testkit::reference_python(),
    ) else {
        return;
    };
    let server = Server::start(ServeConfig {
        context: Some(512),
        ..ServeConfig::local(
            gguf.clone(),
            MODEL.into(),
            Limits {
                max_seqs: 4,
                queue: 16,
            },
        )
    })
    .await
    .unwrap();
    let base = format!("http://{}", server.addr());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .args([&base, MODEL, PROMPT])
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .await
        .expect("the reference Python runs");
    assert!(
        out.status.success(),
        "clients.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    server.stop().await.unwrap();

    let mut session = Session::open(&gguf, &LoadOptions::default(), Some(512)).unwrap();
    let params = ChatParams {
        max_tokens: 24,
        ..ChatParams::default()
    };
    let alone = session
        .chat(
            &[Message::user(PROMPT)],
            &params,
            &CancelToken::new(),
            |_| {},
        )
        .unwrap()
        .text;
    for key in ["chat", "chat_stream", "ollama_chat", "ollama_generate"] {
        assert_eq!(replies[key], alone.as_str(), "{key}");
    }
    session.reset();
    let completion = session
        .complete(
            "The capital of France is",
            &ChatParams {
                max_tokens: 8,
                ..ChatParams::default()
            },
            &CancelToken::new(),
            |_| {},
        )
        .unwrap()
        .text;
    assert_eq!(replies["completion"], completion.as_str());
}
