//! `minibar list`: the models in the shared hub cache and in Minibar's own store.

use std::time::{SystemTime, UNIX_EPOCH};

use minibar_hub::format::bytes;
use minibar_hub::library::{self, LibraryPaths, ModelSource};

/// Arguments of `minibar list`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the library as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `minibar list`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let lib = library::list_models(&LibraryPaths::from_env())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lib)?);
        return Ok(());
    }
    if lib.models.is_empty() {
        println!("no models yet: `minibar pull <catalog id | org/name>` downloads one");
        return Ok(());
    }
    let width = lib
        .models
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:width$}  {:8}  {:11}  {:>5}  {:>9}  {:13}  STATUS",
        "NAME", "SOURCE", "FORMAT", "BITS", "SIZE", "LAST USED"
    );
    for m in &lib.models {
        let source = match m.source {
            ModelSource::HfCache { .. } => "hf-cache",
            ModelSource::Store => "store",
        };
        let format = serde_json::to_value(m.format)?
            .as_str()
            .unwrap_or("?")
            .to_string();
        let bits = m
            .bits_per_weight
            .map(|b| format!("{b:.2}"))
            .unwrap_or_else(|| "-".into());
        let mut status = Vec::new();
        if m.in_use {
            status.push("in use".to_string());
        }
        match &m.layers_held {
            // A cluster node's share: runs those layers, not the whole model.
            Some(held) => status.push(held.describe()),
            None if !m.complete => status.push("incomplete".to_string()),
            None => {}
        }
        if !m.unverified.is_empty() {
            // Which files: `minibar list --json` names them.
            status.push(format!("{} unverified files", m.unverified.len()));
        }
        println!(
            "{:width$}  {:8}  {:11}  {:>5}  {:>9}  {:13}  {}",
            m.name,
            source,
            format,
            bits,
            bytes(m.size_bytes),
            ago(m.last_used),
            status.join(", ")
        );
    }
    println!(
        "{} models, {} on disk",
        lib.models.len(),
        bytes(lib.total_bytes)
    );
    Ok(())
}

fn ago(when: Option<u64>) -> String {
    let Some(t) = when else { return "never".into() };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(t);
    let s = now.saturating_sub(t);
    match s {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}
