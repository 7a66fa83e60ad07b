//! The terminal conversation that `minibar chat` and `minibar cluster chat` both hold, as one
//! loop: both read a line, handle /reset, /exit and /help alike, and keep the conversation
//! when a reply fails (the user can shorten the message or /reset).

use std::io::{BufRead, Write};

use minibar_engine::Message;

/// What answers the conversation: a model loaded here, or a cluster.
pub trait Replier {
    /// Streams the reply to `messages` to standard output; returns its text and a line of
    /// figures.
    fn reply(&mut self, messages: &[Message]) -> anyhow::Result<(String, String)>;

    /// Starts a new conversation on the replier's side (a cached prompt, ...).
    fn reset(&mut self) {}
}

/// Converses until /exit or the end of input; `system`: the system prompt, if any.
pub fn converse(
    system: Option<&str>,
    help: &str,
    replier: &mut impl Replier,
) -> anyhow::Result<()> {
    let mut messages: Vec<Message> = system.map(Message::system).into_iter().collect();
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
                replier.reset();
                eprintln!("(new conversation)");
                continue;
            }
            "/help" => {
                eprintln!("{help}");
                continue;
            }
            _ => {}
        }
        messages.push(Message::user(line.to_owned()));
        let result = replier.reply(&messages);
        println!();
        match result {
            Ok((text, figures)) => {
                eprintln!("[{figures}]");
                messages.push(Message::assistant(text));
            }
            Err(e) => {
                messages.pop();
                eprintln!("error: {e}");
            }
        }
    }
    Ok(())
}
