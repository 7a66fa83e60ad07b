//! Serving throughput: aggregate output tokens/s and p50/p95 time to first token at several
//! numbers of concurrent streaming clients (each a ~128-token prompt to `/v1/completions`,
//! 128 tokens asked for), against Minibar's server started in-process or any
//! OpenAI-compatible server (`--url`, e.g. `mlx_lm.server`), so both are measured alike.
//!
//! usage: cargo bench -p minibar-serve --bench serve -- [--url URL --model NAME]
//!        [--model-path PATH] [--levels 1,2,4,8,16,32] [--gen 128] [--max-seqs 32] [--json]
//! Without --url Minibar serves --model-path (a GGUF file or a model folder; by default
//! MINIBAR_DEFAULT_GGUF). `--json` prints the rows as one JSON object after the table, for
//! `benches/serve_vs_mlx_lm.py`, which runs both servers in one run.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use minibar_serve::{Limits, ServeConfig, Server};
use serde_json::{json, Value};

struct Settings {
    url: Option<String>,
    model: String,
    model_path: Option<std::path::PathBuf>,
    json: bool,
    levels: Vec<usize>,
    generated: usize,
    max_seqs: usize,
}

fn settings() -> anyhow::Result<Settings> {
    let mut s = Settings {
        url: None,
        model: "default".into(),
        model_path: std::env::var_os("MINIBAR_DEFAULT_GGUF").map(Into::into),
        json: false,
        levels: vec![1, 2, 4, 8, 16, 32],
        generated: 128,
        max_seqs: 32,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => s.url = Some(value()?),
            "--model" => s.model = value()?,
            "--model-path" => s.model_path = Some(value()?.into()),
            "--json" => s.json = true,
            "--levels" => {
                s.levels = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--gen" => s.generated = value()?.parse()?,
            "--max-seqs" => s.max_seqs = value()?.parse()?,
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(s)
}

/// A prompt of about 128 tokens, different for each client and each round, so no server can
/// answer from a prompt cache (mlx_lm.server keeps one) what it prefilled for an earlier round.
fn prompt(round: usize, client: usize) -> String {
    let mut p = format!("Story {client} of round {round}. ");
    while p.split_whitespace().count() < 100 {
        p.push_str("The river ran past the old mill where the children played every summer, ");
    }
    p
}

struct Run {
    tokens: usize,
    ttft: Duration,
}

async fn one(
    client: reqwest::Client,
    url: String,
    model: String,
    (round, i): (usize, usize),
    gen: usize,
) -> anyhow::Result<Run> {
    let body = json!({"model": model, "prompt": prompt(round, i), "max_tokens": gen, "temperature": 0,
                      "stream": true, "stream_options": {"include_usage": true}});
    let start = Instant::now();
    let mut r = client
        .post(format!("{url}/v1/completions"))
        .body(body.to_string())
        .header("content-type", "application/json")
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("{}: {}", r.status(), r.text().await?);
    }
    let (mut ttft, mut tokens, mut pieces, mut buf) = (None, None, 0, String::new());
    while let Some(chunk) = r.chunk().await? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find('\n') {
            let line: String = buf.drain(..=end).collect();
            let Some(data) = line.trim().strip_prefix("data: ") else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if v["choices"][0]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
            {
                ttft.get_or_insert_with(|| start.elapsed());
                pieces += 1;
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                tokens = Some(n as usize);
            }
        }
    }
    Ok(Run {
        tokens: tokens.unwrap_or(pieces),
        ttft: ttft.unwrap_or_else(|| start.elapsed()),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s = settings()?;
    let (url, model, server) = match &s.url {
        Some(url) => (url.trim_end_matches('/').to_owned(), s.model.clone(), None),
        None => {
            let path = s
                .model_path
                .clone()
                .context("pass --model-path, set MINIBAR_DEFAULT_GGUF, or pass --url")?;
            let server = Server::start(ServeConfig {
                context: Some(2048),
                ..ServeConfig::local(
                    path,
                    s.model.clone(),
                    Limits {
                        max_seqs: s.max_seqs,
                        queue: 1024,
                    },
                )
            })
            .await?;
            (
                format!("http://{}", server.addr()),
                s.model.clone(),
                Some(server),
            )
        }
    };
    let client = reqwest::Client::new();
    one(client.clone(), url.clone(), model.clone(), (0, 0), 4).await?; // warm-up
    println!("| clients | output tok/s | vs 1 client | p50 TTFT | p95 TTFT | wall |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut base = None;
    let mut rows = Vec::new();
    for (round, &n) in s.levels.iter().enumerate() {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                tokio::spawn(one(
                    client.clone(),
                    url.clone(),
                    model.clone(),
                    (round + 1, i),
                    s.generated,
                ))
            })
            .collect();
        let mut runs = Vec::new();
        for t in tasks {
            runs.push(t.await??);
        }
        let wall = start.elapsed();
        let tokens: usize = runs.iter().map(|r| r.tokens).sum();
        let tps = tokens as f64 / wall.as_secs_f64();
        let mut ttfts: Vec<Duration> = runs.iter().map(|r| r.ttft).collect();
        ttfts.sort();
        let b = *base.get_or_insert(tps);
        println!(
            "| {n} | {tps:.1} | {:.2}x | {:.2} s | {:.2} s | {:.1} s |",
            tps / b,
            percentile(&ttfts, 0.5).as_secs_f64(),
            percentile(&ttfts, 0.95).as_secs_f64(),
            wall.as_secs_f64()
        );
        rows.push(json!({"clients": n, "tokens": tokens, "tok_s": tps,
            "ttft_p50_s": percentile(&ttfts, 0.5).as_secs_f64(),
            "ttft_p95_s": percentile(&ttfts, 0.95).as_secs_f64(), "wall_s": wall.as_secs_f64()}));
    }
    if s.json {
        println!("{}", json!({ "rows": rows }));
    }
    if let Some(server) = server {
        server.stop().await?;
    }
    Ok(())
}
