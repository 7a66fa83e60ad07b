//! `minibar cluster`: the CLI starts its ranks as copies of itself on loopback; `status`
//! shows the split and `generate` answers as one process does; a cluster that is `up` chats
//! as `minibar chat` does and stops at `down`.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use minibar_testkit::KillOnDrop as Up;

fn minibar(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_minibar"))
        .args(args)
        .env_remove("MINIBAR_MODEL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "minibar {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// `cluster generate --socket` gives what one process gives for the same prompt; then
/// `cluster down` is accepted.
fn generates_as_one_process_then_down(socket: &str, model: &str) {
    let question = "What is the capital of France?";
    let asked = minibar(&[
        "cluster", "generate", "--socket", socket, "-p", question, "-n", "12", "--json",
    ]);
    let one = minibar(&[
        "generate", "-m", model, "-p", question, "-n", "12", "--json",
    ]);
    let text = asked["report"]["text"].as_str().unwrap();
    assert_eq!(text.trim(), one["text"].as_str().unwrap().trim(), "{asked}");

    let down = Command::new(env!("CARGO_BIN_EXE_minibar"))
        .args(["cluster", "down", "--socket", socket])
        .output()
        .unwrap();
    assert!(down.status.success(), "{down:?}");
}

#[test]
fn status_splits_the_layers_and_generate_answers_as_one_process() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let model = gguf.to_str().unwrap();
    let plan = minibar(&["cluster", "status", "--ranks", "3", "-m", model, "--json"]);
    let layers: Vec<(u64, u64)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let l = n["layers"].as_array().unwrap();
            (l[0].as_u64().unwrap(), l[1].as_u64().unwrap())
        })
        .collect();
    // SmolLM2's 30 layers, evenly: the three ranks share one machine.
    assert_eq!(layers, [(0, 10), (10, 20), (20, 30)]);
    // Each holds a third of the weights, no rank the whole file.
    let file = std::fs::metadata(&gguf).unwrap().len();
    for n in plan.as_array().unwrap() {
        let held = n["held"].as_u64().unwrap();
        assert!(held > 0 && held <= file / 3, "{n}");
    }

    let question = "What is the capital of France?";
    let one = minibar(&[
        "generate", "-m", model, "-p", question, "-n", "12", "--json",
    ]);
    let split = minibar(&[
        "cluster", "generate", "--ranks", "2", "-m", model, "-p", question, "-n", "12", "--json",
    ]);
    let text = split["report"]["text"].as_str().unwrap();
    assert!(text.contains("Paris"), "{split}");
    assert_eq!(text.trim(), one["text"].as_str().unwrap().trim(), "{one}");
}

/// Runs `minibar args` with `input` on standard input; its standard output.
fn typed(args: &[&str], input: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_minibar"))
        .args(args)
        .env_remove("MINIBAR_MODEL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "minibar {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn up_chats_and_generates_as_one_process_until_down() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let model = gguf.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cluster.sock");
    let socket = socket.to_str().unwrap();
    let mut up = Up(Command::new(env!("CARGO_BIN_EXE_minibar"))
        .args([
            "cluster", "up", "--ranks", "2", "-m", model, "--socket", socket,
        ])
        .env_remove("MINIBAR_MODEL")
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    up.wait_for_socket(Path::new(socket));

    // Two turns: the same replies, printed the same way, as one process's chat.
    let turns = "What is the capital of France?\nAnd of Italy?\n";
    let split = typed(&["cluster", "chat", "--socket", socket, "-n", "12"], turns);
    let one = typed(&["chat", "-m", model, "-n", "12"], turns);
    assert!(split.contains("Paris"), "{split}");
    assert_eq!(split, one);

    // `generate --socket` asks the same running cluster.
    generates_as_one_process_then_down(socket, model);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = up.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "cluster up did not end after down"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    assert!(!Path::new(socket).exists());
}

#[test]
fn ranks_end_with_the_up_that_started_them() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cluster.sock");
    let mut up = Up(Command::new(env!("CARGO_BIN_EXE_minibar"))
        .args(["cluster", "up", "--ranks", "2", "-m"])
        .arg(&gguf)
        .arg("--socket")
        .arg(&socket)
        .env_remove("MINIBAR_MODEL")
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    up.wait_for_socket(&socket);
    // SIGKILL: `up` runs no code of its own as it ends; its ranks see their lifeline close,
    // and rank 0 removes its socket as it ends.
    up.0.kill().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() {
        assert!(Instant::now() < deadline, "rank 0 outlived its launcher");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn nodes_found_by_mdns_form_a_cluster_that_answers_as_one_process() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let model = gguf.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A port of this test's own, away from the system's mDNS responder and other tests.
    let port = (30000 + std::process::id() % 20000).to_string();
    let cluster = format!("test-{}", std::process::id());
    let node = |lead: bool| {
        let socket = dir
            .path()
            .join(if lead { "lead.sock" } else { "other.sock" });
        let mut command = Command::new(env!("CARGO_BIN_EXE_minibar"));
        command
            .args([
                "cluster",
                "up",
                "--discover",
                "2",
                "--ip",
                "127.0.0.1",
                "-m",
                model,
            ])
            .args(["--mdns-port", &port, "--cluster", &cluster, "--socket"])
            .arg(&socket)
            .env_remove("MINIBAR_MODEL")
            .stdout(Stdio::null());
        if lead {
            command.arg("--lead");
        }
        (Up(command.spawn().unwrap()), socket)
    };
    let (mut other, _) = node(false);
    let (mut lead, socket) = node(true);
    lead.wait_for_socket(&socket);
    let socket = socket.to_str().unwrap();

    generates_as_one_process_then_down(socket, model);
    for up in [&mut lead, &mut other] {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = up.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "a node did not end after down");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "{status:?}");
    }
}
