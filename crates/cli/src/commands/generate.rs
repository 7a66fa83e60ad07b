//! `minibar generate`: one reply to one prompt, streamed to standard output.

use std::io::Write;

use minibar_engine::{CancelToken, Message};

use super::{force, model_arg, report, sampling::SamplingArgs};

/// Arguments of `minibar generate`.
#[derive(clap::Args)]
pub struct Args {
    /// What to ask.
    #[arg(long, short)]
    pub prompt: String,
    /// Model path or name in the store (default: the embedded default model).
    #[arg(long, short)]
    pub model: Option<String>,
    /// A system prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Continue the prompt as raw text, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Context window in tokens (default: the model's, at most 8192).
    #[arg(long)]
    pub context: Option<usize>,
    /// Load the model even if it won't fit in memory (remembered for this model; MLX's
    /// memory limit still applies).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    /// Sampling.
    pub sampling: SamplingArgs,
    /// Print the reply and statistics as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `minibar generate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let path = model_arg::resolve(args.model.as_deref())?;
    let (_in_use, mut session) = force::open_session(&path, args.force, args.context)?;
    let params = args.sampling.params();
    let cancel = CancelToken::new();
    super::interrupt::cancel_on_ctrl_c(&cancel);
    let mut out = std::io::stdout();
    let json = args.json;
    let mut print = |piece: &str| {
        if !json {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        }
    };
    let outcome = if args.raw {
        session.complete(&args.prompt, &params, &cancel, &mut print)?
    } else {
        let mut messages = Vec::new();
        if let Some(s) = &args.system {
            messages.push(Message::system(s.clone()));
        }
        messages.push(Message::user(args.prompt.clone()));
        session.chat(&messages, &params, &cancel, &mut print)?
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::outcome_json(&outcome))?
        );
    } else {
        println!();
        eprintln!("{}", report::stats_line(&outcome));
    }
    Ok(())
}
