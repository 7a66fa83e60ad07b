//! `minibar search` against the loopback hub (HF_ENDPOINT): mlx-community's repos first, each
//! judged by minibar-fit and by the engine's table before any download, then pulled.

// minibar-hub's own test server; its lints are that crate's to settle.
#[allow(clippy::incompatible_msrv)]
#[path = "../../hub/tests/support/hubserver.rs"]
mod hubserver;

use std::path::Path;
use std::process::{Command, Output};

use hubserver::{model_repo, unsupported_repo, TestHub};
use serde_json::Value;

fn minibar(home: &Path, endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minibar"))
        .env("MINIBAR_HOME", home.join("minibar"))
        .env("HF_HUB_CACHE", home.join("hf"))
        .env("HF_ENDPOINT", endpoint)
        .env("MINIBAR_CATALOG", home.join("none.toml"))
        .env_remove("HF_TOKEN")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn search_judges_each_result_before_download_and_a_hit_pulls() {
    let hub = TestHub::start(vec![
        unsupported_repo(),
        model_repo("mlx-community/Qwen3-tiny-4bit", &[4096]),
    ]);
    let home = tempfile::tempdir().unwrap();
    let out = minibar(home.path(), &hub.endpoint(), &["search", "tiny", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["repo_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["mlx-community/Qwen3-tiny-4bit", "acme/DeepSeek-V3-tiny"]
    );
    let mlx = &rows[0];
    assert_eq!(mlx["support"]["state"], "runs");
    assert_eq!(mlx["fit"]["verdict"]["level"], "fits");
    assert!(mlx["weight_bytes"].as_u64().unwrap() > 0);
    let other = &rows[1];
    assert_eq!(other["model_type"], "deepseek_v3");
    assert_eq!(other["support"]["state"], "not_yet");
    assert!(other["support"]["reason"]
        .as_str()
        .unwrap()
        .contains("DeepSeek-V3"));
    // A repository whose model the engine does not run is refused before download.
    let refused = minibar(
        home.path(),
        &hub.endpoint(),
        &["pull", "acme/DeepSeek-V3-tiny", "--yes"],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("not supported yet") && err.contains("nothing was downloaded"),
        "{err}"
    );
    assert!(!home
        .path()
        .join("hf")
        .join("models--acme--DeepSeek-V3-tiny")
        .join("snapshots")
        .exists());
    // Nothing was downloaded by searching.
    assert!(!home
        .path()
        .join("hf")
        .join("models--mlx-community--Qwen3-tiny-4bit")
        .join("snapshots")
        .exists());

    let text = minibar(home.path(), &hub.endpoint(), &["search", "qwen3"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("mlx-community/Qwen3-tiny-4bit") && text.contains("minibar pull"),
        "{text}"
    );

    let pulled = minibar(
        home.path(),
        &hub.endpoint(),
        &["pull", "mlx-community/Qwen3-tiny-4bit", "--yes", "--json"],
    );
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert!(home
        .path()
        .join("hf")
        .join("models--mlx-community--Qwen3-tiny-4bit")
        .join("snapshots")
        .is_dir());
}
