//! The cluster (`minibar cluster up`) as the app sees it: whether one is up on this machine's
//! control socket and what it holds (Settings), whether a model too large for this Mac fits
//! across its nodes (the fit verdict), and chat through it for such a model.
//!
//! Nothing here decides a split or a fit: the ranks agreed the plan at start (minibar-fit's
//! `fits_across`), rank 0 reports it, and [`across`] asks the same function for other models.
//! Rank 0 answers between jobs only, so the last answer is kept: while the cluster is busy
//! with a reply, Settings and the model list show it as it was.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use minibar_cluster::{control, Ask, Client, Event, Prompt};

use crate::engine_worker::{CancelToken, ChatSink};
use crate::types::{
    AcrossNodes, AppError, ClusterNode, ClusterStatus, GenerationStats, Role, SamplingParams,
    StopReason,
};

/// How long the app waits for rank 0's answer: an idle rank 0 answers at once, a busy one
/// only after its job, so the model list is not held up for a reply's length.
const STATUS_WAIT: Duration = Duration::from_millis(500);

/// How to start a cluster, shown when none is up.
pub const HOW_TO_START: &str = "No cluster is up: start one with `minibar cluster up -m MODEL --ranks 2` (this machine), or `minibar cluster up -m MODEL --discover N` on each of N Macs.";

/// The last status each socket answered, for while its cluster is busy.
static LAST: Mutex<Option<(PathBuf, control::Status)>> = Mutex::new(None);

/// The control socket `minibar cluster up` listens on by default.
pub fn socket() -> Result<PathBuf, AppError> {
    control::default_socket().map_err(|e| AppError::io(e.to_string()))
}

/// What the cluster at `socket` holds: `None` when none is up there. A cluster busy with a
/// job is up; its last answer stands for it (none yet: an error saying it is busy).
pub fn query(socket: &Path) -> Result<Option<control::Status>, String> {
    let client = Client::new(socket);
    if client.wait_up(Duration::ZERO).is_err() {
        return Ok(None);
    }
    let answer = client.status(STATUS_WAIT);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    match answer {
        Ok(status) => {
            *last = Some((socket.to_owned(), status.clone()));
            Ok(Some(status))
        }
        Err(e) => match last.as_ref() {
            Some((s, status)) if s == socket => Ok(Some(status.clone())),
            _ => Err(e.to_string()),
        },
    }
}

/// Settings' view of the cluster at `socket`.
pub fn status(socket: &Path) -> ClusterStatus {
    let mut view = ClusterStatus {
        up: false,
        socket: socket.display().to_string(),
        model: None,
        nodes: Vec::new(),
        note: HOW_TO_START.into(),
    };
    match query(socket) {
        Ok(None) => {}
        Ok(Some(s)) => {
            view.up = true;
            view.model = Some(model_name(&s.model));
            view.nodes = s
                .nodes
                .iter()
                .map(|n| ClusterNode {
                    rank: n.rank as u32,
                    address: n.node.clone(),
                    memory_bytes: n.budget,
                    held_bytes: n.held,
                    first_layer: n.layers[0] as u32,
                    end_layer: n.layers[1] as u32,
                })
                .collect();
            view.note = s.verdict;
        }
        Err(e) => {
            view.up = true;
            view.note = e;
        }
    }
    view
}

/// A model's file or folder name, as the list names installed models.
fn model_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Each node's memory, for [`across`]; `None` when no cluster answers at the default socket.
pub fn node_memory() -> Option<Vec<u64>> {
    let status = query(&socket().ok()?).ok()??;
    Some(status.nodes.iter().map(|n| n.budget).collect())
}

/// Whether a model of `layers` blocks and `weight_bytes` of weights fits across nodes that may
/// use `memory` bytes each: minibar-fit's verdict, the split rule the ranks use; `None` when it
/// does not.
pub fn across(layers: usize, weight_bytes: u64, memory: &[u64]) -> Option<AcrossNodes> {
    if memory.is_empty() || layers == 0 {
        return None;
    }
    let fit = minibar_fit::fits_across(layers, weight_bytes, memory);
    fit.fits.then_some(AcrossNodes {
        nodes: fit.nodes as u32,
        reason: fit.reason,
    })
}

/// Where a chat for a model goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// This Mac's engine (its load gate judges the model).
    Local,
    /// The cluster at this socket, which holds the model.
    Cluster(PathBuf),
}

/// Whether two paths name the same model file or folder.
fn same_model(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Where a chat with the model at `model` goes: a model that fits this Mac (`fits_here`, the
/// list's verdict) or with no cluster up runs here; one that does not, on the cluster when the
/// cluster holds it. A cluster holding another model is an error that says so, rather than a
/// load here that would not fit.
pub fn route(
    model: &Path,
    fits_here: bool,
    socket: &Path,
    cluster: Option<&control::Status>,
) -> Result<Route, AppError> {
    match cluster {
        None => Ok(Route::Local),
        Some(_) if fits_here => Ok(Route::Local),
        Some(s) if same_model(&s.model, model) => Ok(Route::Cluster(socket.to_owned())),
        Some(s) => Err(AppError::new(
            crate::types::AppErrorKind::ModelTooLarge,
            format!(
                "{} does not fit this Mac, and the cluster that is up holds {}, not it: stop it (`minibar cluster down`) and start one with this model (`minibar cluster up -m {}`).",
                model_name(model),
                model_name(&s.model),
                model.display()
            ),
        )),
    }
}

/// The conversation in the cluster's terms (rank 0 applies the model's chat template, as the
/// engine does here).
fn prompt(messages: &[(Role, String)]) -> Prompt {
    Prompt::Messages(
        messages
            .iter()
            .map(|(role, content)| minibar_text::Message::new(role.as_str(), content.clone()))
            .collect(),
    )
}

/// How a cluster's report says it ended, in the UI's terms.
fn stop_reason(finish: &str) -> StopReason {
    match finish {
        "eos" | "stop" => StopReason::Eos,
        "cancelled" => StopReason::Stopped,
        _ => StopReason::MaxTokens,
    }
}

/// Runs one chat turn on the cluster at `socket`, streaming its text into `sink` as a local
/// reply streams (`started`, `piece`s, `finished`); `cancel` stops it after the current token.
pub fn chat(
    socket: &Path,
    messages: &[(Role, String)],
    params: &SamplingParams,
    cancel: &CancelToken,
    mut sink: Box<dyn ChatSink>,
) {
    let ask = Ask {
        prompt: prompt(messages),
        max_tokens: params.max_tokens.max(1) as usize,
        sampling: crate::engine_worker::sampling(params),
        ..Ask::default()
    };
    sink.started();
    let mut shown = String::new();
    let result = Client::new(socket).generate(&ask, |e| {
        if let Event::Token { text, .. } = e {
            sink.piece(text);
            shown.push_str(text);
        }
        !cancel.is_cancelled()
    });
    let outcome = match result {
        Ok(report) => {
            // The tail only the whole reply decodes (a character split across tokens).
            if let Some(tail) = report.text.strip_prefix(shown.as_str()) {
                sink.piece(tail);
            }
            Ok(GenerationStats {
                prompt_tokens: report.prompt_tokens as u64,
                generated_tokens: report.tokens.len() as u64,
                ttft_ms: report.ttft_s * 1e3,
                tokens_per_second: report.decode_tps,
                total_ms: 0.0,
                stop_reason: stop_reason(&report.finish),
            })
        }
        Err(e) => Err(AppError::engine(format!("The cluster failed: {e}"))),
    };
    sink.finished(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;
    use minibar_cluster::NodePlan;

    fn holding(model: &Path) -> control::Status {
        control::Status {
            model: model.to_owned(),
            nodes: vec![NodePlan {
                rank: 0,
                node: "this machine".into(),
                budget: 1,
                layers: [0, 1],
                held: 1,
            }],
            verdict: String::new(),
        }
    }

    #[test]
    fn a_chat_goes_to_the_cluster_only_for_its_model_when_it_does_not_fit_here() {
        let dir = tempfile::tempdir().unwrap();
        let (big, other) = (dir.path().join("big.gguf"), dir.path().join("other.gguf"));
        std::fs::write(&big, b"GGUF").unwrap();
        std::fs::write(&other, b"GGUF").unwrap();
        let sock = dir.path().join("c.sock");
        let route = |fits, cluster: Option<&control::Status>| route(&big, fits, &sock, cluster);
        assert_eq!(route(false, None).unwrap(), Route::Local);
        assert_eq!(route(true, Some(&holding(&big))).unwrap(), Route::Local);
        assert_eq!(
            route(false, Some(&holding(&big))).unwrap(),
            Route::Cluster(sock.clone())
        );
        // The same file by another spelling of its path.
        let spelled = dir.path().join(".").join("big.gguf");
        assert_eq!(
            route(false, Some(&holding(&spelled))).unwrap(),
            Route::Cluster(sock.clone())
        );
        let e = route(false, Some(&holding(&other))).unwrap_err();
        assert!(
            e.message.contains("holds other.gguf, not it"),
            "{}",
            e.message
        );
    }

    #[test]
    fn across_is_minibar_fits_verdict_for_the_nodes() {
        const GB: u64 = 1_000_000_000;
        let two = across(80, 140 * GB, &[96 * GB, 96 * GB]).unwrap();
        assert_eq!(two.nodes, 2);
        assert!(
            two.reason.starts_with("fits across 2 nodes"),
            "{}",
            two.reason
        );
        assert!(across(80, 140 * GB, &[64 * GB, 32 * GB]).is_none());
        assert!(across(80, 140 * GB, &[]).is_none());
    }

    #[test]
    fn no_cluster_up_says_how_to_start_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = status(&dir.path().join("none.sock"));
        assert!(!s.up);
        assert!(s.nodes.is_empty());
        assert!(s.note.contains("minibar cluster up"), "{}", s.note);
        assert!(!s.note.contains('\n'));
    }
}
