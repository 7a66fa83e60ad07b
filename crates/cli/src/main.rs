//! `minibar`: every feature of the app, headless and scriptable.

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
    /// Which models fit this machine's memory (or a what-if size).
    Fit(commands::fit::Args),
    /// Download a catalog model or any Hugging Face repo.
    Pull(commands::pull::Args),
    /// List the models in the local library.
    List(commands::list::Args),
    /// Delete a model from the local library.
    Rm(commands::rm::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Fit(args) => commands::fit::run(args),
        Command::Pull(args) => commands::pull::run(args),
        Command::List(args) => commands::list::run(args),
        Command::Rm(args) => commands::rm::run(args),
    }
}
