//! `minibar chat`: an interactive conversation in the terminal, streaming replies and showing
//! tokens per second and time to first token. Follow-up turns reuse the cached prompt.

use std::io::Write;

use minibar_engine::{CancelToken, ChatParams, Message, Session};

use super::{force, model_arg, repl, report, sampling::SamplingArgs};

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
    let mut local = Local {
        session: &mut session,
        params: args.sampling.params(),
    };
    repl::converse(args.system.as_deref(), HELP, &mut local)
}

/// The conversation's replies from the model loaded here.
struct Local<'s> {
    session: &'s mut Session,
    params: ChatParams,
}

impl repl::Replier for Local<'_> {
    fn reply(&mut self, messages: &[Message]) -> anyhow::Result<(String, String)> {
        let cancel = CancelToken::new();
        super::interrupt::cancel_on_ctrl_c(&cancel);
        let mut out = std::io::stdout();
        let outcome = self
            .session
            .chat(messages, &self.params, &cancel, |piece| {
                let _ = out.write_all(piece.as_bytes());
                let _ = out.flush();
            })?;
        let figures = report::stats_line(&outcome);
        Ok((outcome.text, figures))
    }

    fn reset(&mut self) {
        self.session.reset();
    }
}
