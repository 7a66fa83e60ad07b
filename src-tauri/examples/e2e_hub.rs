//! A loopback Hugging Face hub for the end-to-end tests: serves a small MLX-style repo as
//! `mlx-community/SmolLM2-135M-Instruct-4bit` (the catalog's `smollm2-135m@4bit`) over a
//! deliberately slow link, so a download stays in progress long enough to be seen. Built on
//! minibar-hub's own test server. Prints `HF_ENDPOINT=<url>` and serves until killed.

// minibar-hub's own test server; its lints are that crate's to settle.
#[allow(clippy::incompatible_msrv)]
#[path = "../../crates/hub/tests/support/hubserver.rs"]
mod hubserver;

use hubserver::{model_repo, Fault, TestHub};

/// The repository the catalog lists for `smollm2-135m@4bit`.
const REPO: &str = "mlx-community/SmolLM2-135M-Instruct-4bit";

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "0".into());
    let hub = TestHub::start_on(
        vec![model_repo(REPO, &[6 << 20, 1 << 20])],
        &format!("127.0.0.1:{port}"),
    );
    // 6 MB at 256 KB every 100 ms: a few seconds of visible progress.
    hub.set_persistent_fault(
        "model-00001-of-00002.safetensors",
        Some(Fault::Slow {
            chunk: 256 << 10,
            pause_ms: 100,
        }),
    );
    println!("HF_ENDPOINT={}", hub.endpoint());
    loop {
        std::thread::park();
    }
}
