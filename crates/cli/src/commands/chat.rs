//! `minibar chat`: an interactive conversation in the terminal, streaming replies and showing
//! tokens per second and time to first token. Follow-up turns reuse the cached prompt.

use std::io::{BufRead, Write};

use minibar_engine::{CancelToken, Message};

use super::{force, model_arg, report, sampling::SamplingArgs};

/// Arguments of `minibar chat`.
#[derive(clap::Args)]
pub struct Args {
    /// Model path or name in the store (default: the embedded default model).
    #[arg(long, short)]
    pub model: Option<String>,
    /// A system prompt.
    #[arg(long)]
    pub system: Option<String>,
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
}

const HELP: &str = "Type a message and press Enter. /reset starts over, /exit (or Ctrl-D) quits, Ctrl-C stops a reply.";

/// Runs `minibar chat`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let path = model_arg::resolve(args.model.as_deref())?;
    eprintln!("loading {} ...", path.display());
    let (_in_use, mut session) = force::open_session(&path, args.force, args.context)?;
    eprintln!(
        "{} ready ({} backend, {:.0} MB of weights, context {} tokens). {HELP}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
        session.model.backend.name(),
        session.model.weight_bytes() as f64 / 1e6,
        session.context()
    );
    let params = args.sampling.params();
    let mut messages: Vec<Message> = args
        .system
        .iter()
        .map(|s| Message::system(s.clone()))
        .collect();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    loop {
        print!("> ");
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            println!();
            break;
        }
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages.retain(|m| m.role == "system");
                session.reset();
                eprintln!("(new conversation)");
                continue;
            }
            "/help" => {
                eprintln!("{HELP}");
                continue;
            }
            _ => {}
        }
        messages.push(Message::user(line.to_owned()));
        let cancel = CancelToken::new();
        super::interrupt::cancel_on_ctrl_c(&cancel);
        let result = session.chat(&messages, &params, &cancel, |piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        });
        println!();
        match result {
            Ok(outcome) => {
                eprintln!("[{}]", report::stats_line(&outcome));
                messages.push(Message::assistant(outcome.text));
            }
            Err(e) => {
                // The conversation is kept: the user can shorten the message or /reset.
                messages.pop();
                eprintln!("error: {e}");
            }
        }
    }
    Ok(())
}
