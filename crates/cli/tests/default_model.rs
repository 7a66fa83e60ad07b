//! The `minibar` binary with the embedded default model: import it into a fresh store, then
//! ask it the question every user asks first, one-shot and in the interactive chat.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

fn minibar(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_minibar"));
    c.env("MINIBAR_HOME", home).env_remove("MINIBAR_MODEL");
    c
}

fn imported_home(gguf: &Path) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let out = minibar(home.path())
        .args([
            "import",
            gguf.to_str().unwrap(),
            "--name",
            "SmolLM2-135M-Instruct.Q4_1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    home
}

#[test]
fn generate_answers_the_capital_of_france() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let home = imported_home(&gguf);
    let out = minibar(home.path())
        .args([
            "generate",
            "-p",
            "What is the capital of France?",
            "-n",
            "40",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "generate failed: {stderr}");
    assert!(stdout.contains("Paris"), "reply was: {stdout}");
    assert!(
        stderr.contains("tok/s") && stderr.contains("first token"),
        "no statistics: {stderr}"
    );
}

#[test]
fn chat_streams_replies_and_reuses_the_prompt_cache() {
    let Some(gguf) = minibar_testkit::default_gguf() else {
        return;
    };
    let home = imported_home(&gguf);
    let mut child = minibar(home.path())
        .args(["chat", "-n", "40"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is the capital of France?\nAnd of Italy?\n/exit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chat failed: {stderr}");
    assert!(stdout.contains("Paris"), "first reply: {stdout}");
    assert!(stdout.contains("Rome"), "second reply: {stdout}");
    // The second turn prefills only its new tokens.
    assert!(
        stderr.contains("cached)"),
        "no prompt-cache reuse reported: {stderr}"
    );
}

#[test]
fn a_missing_default_model_says_how_to_install_it() {
    let home = tempfile::tempdir().unwrap();
    let out = minibar(home.path())
        .args(["generate", "-p", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("make run"), "{stderr}");
}
