//! A chat as a Markdown document.

use crate::types::{ChatSession, MarkdownExport, MessageStatus, Role};

/// A file name from a title: lowercase words joined by dashes.
fn file_name(title: &str) -> String {
    let slug: String = title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .collect::<Vec<_>>()
        .join("-")
        .to_lowercase();
    if slug.is_empty() {
        "chat.md".into()
    } else {
        format!("{slug}.md")
    }
}

/// Renders a session: its title as a heading, each message under its author, replies with
/// their model and figures.
pub fn to_markdown(session: &ChatSession) -> MarkdownExport {
    let mut md = format!("# {}\n", session.title);
    if let Some(model) = &session.model {
        md.push_str(&format!("\n_Model: {model}_\n"));
    }
    for m in &session.messages {
        let who = match m.role {
            Role::System => "System".to_string(),
            Role::User => "You".to_string(),
            Role::Assistant => match &m.model {
                Some(model) => format!("Assistant ({model})"),
                None => "Assistant".to_string(),
            },
        };
        md.push_str(&format!("\n## {who}\n\n{}\n", m.content.trim_end()));
        if let Some(s) = &m.stats {
            md.push_str(&format!(
                "\n_{} tokens · {:.1} tokens/s · first token after {:.0} ms_\n",
                s.generated_tokens, s.tokens_per_second, s.ttft_ms
            ));
        }
        match m.status {
            MessageStatus::Stopped => md.push_str("\n_(stopped)_\n"),
            MessageStatus::Error => md.push_str("\n_(failed)_\n"),
            _ => {}
        }
    }
    MarkdownExport {
        file_name: file_name(&session.title),
        markdown: md,
    }
}
