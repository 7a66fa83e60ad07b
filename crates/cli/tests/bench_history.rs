//! A damaged benchmark history does not stop `minibar bench`: it is set aside, as the app does.

use std::process::Command;

#[test]
fn a_damaged_bench_history_is_set_aside_and_listing_works() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("bench.sqlite");
    std::fs::write(&db, b"not a database ".repeat(300)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_minibar"))
        .args(["bench", "--history"])
        .env("MINIBAR_HOME", home.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "minibar bench --history failed: {stderr}"
    );
    assert!(
        stderr.contains("Your benchmark history could not be read"),
        "{stderr}"
    );
    let kept: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bench.sqlite.corrupt-"))
        .collect();
    assert!(!kept.is_empty(), "nothing set aside");
    // The fresh history is a real database now: a second listing says nothing of damage.
    let again = Command::new(env!("CARGO_BIN_EXE_minibar"))
        .args(["bench", "--history"])
        .env("MINIBAR_HOME", home.path())
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("could not be read"));
}
