//! The real thing end to end: the embedded default model, imported into a Hugging Face folder,
//! served by the loopback hub under its catalog repo with faults on the weights (a dropped
//! connection, a burst of 5xx, corrupt bytes), pulled with `minibar pull`, then loaded and
//! asked a question. Needs `$MINIBAR_BIN` (or the `minibar` next to this test) and
//! `$MINIBAR_DEFAULT_GGUF`, both of which `make test` provides.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::hubserver::{Fault, ServedFile, ServedRepo, TestHub};

const CATALOG_ID: &str = "smollm2-135m";
const REPO: &str = "mlx-community/SmolLM2-135M-Instruct-4bit";

fn minibar_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MINIBAR_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("minibar");
    candidate.is_file().then_some(candidate)
}

/// Every file of the folder `minibar import` wrote, weights as LFS files.
fn served_folder(dir: &Path) -> ServedRepo {
    let mut files: Vec<ServedFile> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let lfs = name.ends_with(".safetensors");
            ServedFile::new(&name, std::fs::read(&p).unwrap(), lfs)
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    ServedRepo::new(REPO, files)
}

fn minibar(bin: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("HF_HUB_CACHE", home.join("hub"))
        .env("MINIBAR_HOME", home.join("minibar"))
        .env("MINIBAR_CATALOG", home.join("no-user-catalog.toml"))
        .env("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("MINIBAR_MODEL");
    cmd
}

#[test]
fn the_default_model_pulled_through_faults_answers_a_question() {
    let (Some(bin), Some(gguf)) = (minibar_bin(), minibar_testkit::default_gguf()) else {
        minibar_testkit::required::<()>("the minibar binary or MINIBAR_DEFAULT_GGUF is missing");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("exported");
    let out = minibar(&bin, home.path())
        .args(["import", gguf.to_str().unwrap(), "--output"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = served_folder(&folder);
    let weights: Vec<String> = served
        .files
        .iter()
        .filter(|f| f.path.ends_with(".safetensors"))
        .map(|f| f.path.clone())
        .collect();
    assert!(!weights.is_empty(), "the import wrote no weights");
    let server = TestHub::start(vec![served.clone()]);
    let first = &weights[0];
    let size = served.file(first).data.len() as u64;
    server.push_faults(
        first,
        [
            Fault::DropAfter(size / 3),
            Fault::Status(503),
            Fault::Status(502),
            Fault::Corrupt,
        ],
    );

    let out = minibar(&bin, home.path())
        .args(["pull", CATALOG_ID, "--yes"])
        .env("HF_ENDPOINT", server.endpoint())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pull failed: {stderr}");
    assert_eq!(server.pending_faults(), 0, "every fault was met: {stderr}");

    // The pulled snapshot holds exactly the served bytes.
    let snapshot = home
        .path()
        .join("hub")
        .join(format!("models--{}", REPO.replace('/', "--")))
        .join("snapshots")
        .join(&served.commit);
    for f in &served.files {
        let got = std::fs::read(snapshot.join(&f.path))
            .unwrap_or_else(|e| panic!("{} was not pulled: {e}", f.path));
        assert!(got == f.data, "{} differs from what was served", f.path);
    }

    let out = minibar(&bin, home.path())
        .args([
            "generate",
            "-p",
            "What is the capital of France?",
            "-n",
            "30",
            "-m",
        ])
        .arg(&snapshot)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Paris"), "reply was: {stdout}");
    eprintln!(
        "pulled {} files ({} requests, faults: drop at 1/3, 503, 502, corrupt); reply: {}",
        served.files.len(),
        server.total_requests(),
        stdout.trim()
    );
}
