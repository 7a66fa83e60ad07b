//! The app and a cluster that is up (`minibar cluster up --ranks 2` on loopback): Settings'
//! `cluster_status` names its nodes, model and layer split, and a chat turn through it
//! streams into a sink as a local reply does. Runs the `minibar` binary of the same build
//! (`cargo build -p minibar`, which a workspace test run does).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use minibar_app::engine_worker::{CancelToken, ChatSink};
use minibar_app::types::{AppError, GenerationStats, Role, SamplingParams, StopReason};
use minibar_testkit::KillOnDrop as Up;
use serde_json::json;

/// `minibar` beside this test's folder (target/<profile>/deps/..).
fn minibar_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("minibar");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p minibar)",
        bin.display()
    );
    bin
}

/// What a chat sink was told, in order.
#[derive(Debug)]
enum Told {
    Started,
    Piece(String),
    Finished(Result<GenerationStats, AppError>),
}

struct Recorder(mpsc::Sender<Told>);

impl ChatSink for Recorder {
    fn started(&mut self) {
        let _ = self.0.send(Told::Started);
    }
    fn piece(&mut self, text: &str) {
        let _ = self.0.send(Told::Piece(text.to_string()));
    }
    fn finished(self: Box<Self>, outcome: Result<GenerationStats, AppError>) {
        let _ = self.0.send(Told::Finished(outcome));
    }
}

#[test]
fn settings_show_the_cluster_that_is_up_and_chat_streams_through_it() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    // This binary's own runtime folder: the app asks the default socket, as `up` makes it.
    let runtime = tempfile::tempdir().unwrap();
    std::env::set_var("XDG_RUNTIME_DIR", runtime.path());
    let t = common::app();
    let none = t.call("cluster_status", json!({})).unwrap();
    assert_eq!(none["up"], false, "{none}");
    assert!(
        none["note"]
            .as_str()
            .unwrap()
            .contains("minibar cluster up"),
        "{none}"
    );

    let socket = minibar_app::cluster::socket().unwrap();
    let mut up = Up(Command::new(minibar_bin())
        .args(["cluster", "up", "--ranks", "2", "-m"])
        .arg(&gguf)
        .env_remove("MINIBAR_MODEL")
        .spawn()
        .unwrap());
    up.wait_for_socket(&socket);

    let s = t.call("cluster_status", json!({})).unwrap();
    assert_eq!(s["up"], true, "{s}");
    assert_eq!(
        s["model"].as_str().unwrap(),
        gguf.file_name().unwrap().to_str().unwrap()
    );
    let nodes = s["nodes"].as_array().unwrap();
    let split: Vec<(u64, u64)> = nodes
        .iter()
        .map(|n| {
            (
                n["firstLayer"].as_u64().unwrap(),
                n["endLayer"].as_u64().unwrap(),
            )
        })
        .collect();
    // SmolLM2's 30 layers, evenly: both ranks share this machine's memory.
    assert_eq!(split, [(0, 15), (15, 30)], "{s}");
    assert!(nodes.iter().all(|n| n["memoryBytes"].as_u64().unwrap() > 0));
    assert!(
        s["note"]
            .as_str()
            .unwrap()
            .starts_with("fits across 2 nodes"),
        "{s}"
    );

    let (tx, rx) = mpsc::channel();
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens: 12,
        ..SamplingParams::default()
    };
    let messages = [(Role::User, "What is the capital of France?".to_string())];
    minibar_app::cluster::chat(
        &socket,
        &messages,
        &params,
        &CancelToken::new(),
        Box::new(Recorder(tx)),
    );
    let told: Vec<Told> = rx.try_iter().collect();
    assert!(matches!(told.first(), Some(Told::Started)), "{told:?}");
    let text: String = told
        .iter()
        .filter_map(|t| match t {
            Told::Piece(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    assert!(told.iter().filter(|t| matches!(t, Told::Piece(_))).count() > 1);
    assert!(text.contains("Paris"), "{text}");
    match told.last() {
        Some(Told::Finished(Ok(stats))) => {
            assert!(stats.generated_tokens > 0 && stats.generated_tokens <= 12);
            assert!(stats.prompt_tokens > 0);
            assert_ne!(stats.stop_reason, StopReason::Stopped);
        }
        other => panic!("the reply did not finish: {other:?}"),
    }

    // After the cluster is down, Settings says so again.
    drop(up);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = t.call("cluster_status", json!({})).unwrap();
        if s["up"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "still up: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
