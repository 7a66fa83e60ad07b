//! `make bench-cluster`: the default model split over 1, 2 and 3 ranks on this machine's
//! loopback: time to first token, decode tokens/s, bytes sent per token and the time per
//! token the ranks spent sending and receiving.
//!
//! `cargo bench -p minibar-cluster --bench cluster [-- MODEL [PROMPT_TOKENS [TOKENS]]]`; the
//! model defaults to `MINIBAR_DEFAULT_GGUF`. On one machine the ranks share its cores, so
//! more ranks is not faster here: the figures that carry over to a real cluster are the
//! bytes per token and the communication time.

use std::{path::PathBuf, time::Duration};

use minibar_cluster::{Job, Launcher, Prompt};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let model = args
        .first()
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("MINIBAR_DEFAULT_GGUF").map(PathBuf::from))
        .expect("give a model path or set MINIBAR_DEFAULT_GGUF");
    let prompt_tokens: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(128);
    let tokens: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let launcher = Launcher {
        program: PathBuf::from(env!("CARGO_BIN_EXE_minibar-rank")),
        args: Vec::new(),
        grace: Duration::ZERO,
    };
    // Ids cycling through ordinary tokens: the model's speed does not depend on the words.
    let ids: Vec<u32> = (0..prompt_tokens as u32)
        .map(|i| 1000 + i * 7 % 5000)
        .collect();
    println!(
        "model {} | prompt {prompt_tokens} tokens | {tokens} generated, greedy",
        model.display()
    );
    println!(
        "{:>5} {:<14} {:>9} {:>9} {:>12} {:>14}",
        "ranks", "layers", "TTFT s", "tok/s", "bytes/token", "comm ms/token"
    );
    for ranks in 1..=3 {
        let job = Job {
            model: model.clone(),
            prompt: Prompt::Tokens(ids.clone()),
            max_tokens: tokens,
            ignore_eos: true,
            ..Job::default()
        };
        let done = launcher
            .start(&vec![job; ranks])
            .and_then(|r| r.wait(|_, _| {}))
            .unwrap_or_else(|e| panic!("{ranks} ranks: {e}"));
        let r = done.report.expect("rank 0 reports");
        let split: Vec<String> = done
            .plan
            .iter()
            .map(|n| format!("{}", n.layers[1] - n.layers[0]))
            .collect();
        println!(
            "{:>5} {:<14} {:>9.3} {:>9.1} {:>12.0} {:>14.3}",
            ranks,
            split.join("+"),
            r.ttft_s,
            r.decode_tps,
            r.bytes_per_token,
            r.comm_ms_per_token
        );
    }
}
