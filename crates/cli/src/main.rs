//! `minibar`: every feature of the app, headless and scriptable.

#![forbid(unsafe_code)]

mod commands;

use clap::{Parser, Subcommand};

/// Minibar: local chat models on your Mac, from the command line.
#[derive(Parser)]
#[command(name = "minibar", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat with a model in the terminal.
    Chat(commands::chat::Args),
    /// Reply to one prompt and exit.
    Generate(commands::generate::Args),
    /// Import a GGUF file into the model store.
    Import(commands::import::Args),
    /// Quantize a model folder (or undo quantization).
    Quantize(commands::quantize::Args),
    /// Which models fit this machine's memory (or a what-if size).
    Fit(commands::fit::Args),
    /// Download a catalog model or any Hugging Face repo.
    Pull(commands::pull::Args),
    /// Search the Hugging Face hub: fit and whether Minibar runs each result, before download.
    Search(commands::search::Args),
    /// List the models in the local library.
    List(commands::list::Args),
    /// Delete a model from the local library.
    Rm(commands::rm::Args),
    /// Serve the OpenAI and Ollama APIs on this machine (loopback by default).
    Serve(commands::serve::Args),
    /// Benchmark this machine: pp512, tg128, batch scaling; history and export.
    Bench(commands::bench::Args),
    /// Run one model across several processes or Macs (layers split among them).
    Cluster(commands::cluster::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Chat(args) => commands::chat::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Import(args) => commands::import::run(args),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::Fit(args) => commands::fit::run(args),
        Command::Pull(args) => commands::pull::run(args),
        Command::Search(args) => commands::search::run(args),
        Command::List(args) => commands::list::run(args),
        Command::Rm(args) => commands::rm::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Cluster(args) => commands::cluster::run(args),
    }
}
