//! Serves a model folder as a Hugging Face-compatible hub on 127.0.0.1, for trying `minibar pull`
//! without the internet:
//!
//! ```text
//! cargo run -p minibar-hub --example loopback_hub -- <folder> <org/name> [port]
//! HF_ENDPOINT=http://127.0.0.1:<port> minibar pull <org/name>
//! ```

#[path = "../tests/support/hubserver.rs"]
mod hubserver;

use hubserver::{ServedFile, ServedRepo, TestHub};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(folder), Some(repo_id)) = (args.next(), args.next()) else {
        eprintln!("usage: loopback_hub <folder> <org/name> [port]");
        std::process::exit(2);
    };
    let port = args.next().unwrap_or_else(|| "0".into());
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&folder).unwrap_or_else(|e| {
        eprintln!("cannot read {folder}: {e}");
        std::process::exit(1);
    });
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let data = std::fs::read(&path).unwrap_or_else(|e| {
            eprintln!("cannot read {}: {e}", path.display());
            std::process::exit(1);
        });
        // The hub stores weights (and anything large) in LFS.
        let lfs =
            name.ends_with(".safetensors") || name.ends_with(".gguf") || data.len() > 10 << 20;
        files.push(ServedFile::new(&name, data, lfs));
    }
    let hub = TestHub::start_on(
        vec![ServedRepo::new(&repo_id, files)],
        &format!("127.0.0.1:{port}"),
    );
    println!(
        "serving {folder} as {repo_id}: HF_ENDPOINT={}",
        hub.endpoint()
    );
    loop {
        std::thread::park();
    }
}
