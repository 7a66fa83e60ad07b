//! Runs a reply: stores it as it streams and sends `chat-event`s, from the engine thread.

use std::sync::Arc;
use std::time::Instant;

use tauri::{AppHandle, Runtime};
use tauri_specta::Event;

use crate::engine_worker::{CancelToken, ChatJob, ChatSink};
use crate::history::{History, ReplyWriter};
use crate::state::{Generations, Running};
use crate::types::{AppError, AppErrorKind, ChatEvent, GenerationStats, MessageStatus, StopReason};

/// Streams one reply into the history and the UI.
pub struct StreamSink<R: Runtime> {
    app: AppHandle<R>,
    history: Arc<History>,
    generations: Generations,
    request_id: String,
    session_id: String,
    message_id: String,
    model: String,
    index: u32,
    started_at: Instant,
    /// The reply's text not yet committed.
    writer: ReplyWriter,
    /// A save failure was shown for this reply (once is enough until one succeeds).
    save_failed: bool,
}

impl<R: Runtime> StreamSink<R> {
    /// A sink for `request_id`, registered as running so `stop_generation` finds it.
    pub fn register(
        app: AppHandle<R>,
        history: Arc<History>,
        generations: Generations,
        session_id: &str,
        message_id: &str,
        model: &str,
        cancel: CancelToken,
    ) -> (String, Self) {
        let request_id = uuid::Uuid::new_v4().to_string();
        if let Ok(mut g) = generations.lock() {
            g.insert(
                request_id.clone(),
                Running {
                    session_id: session_id.to_string(),
                    cancel,
                },
            );
        }
        let sink = StreamSink {
            app,
            history: history.clone(),
            generations,
            request_id: request_id.clone(),
            session_id: session_id.to_string(),
            message_id: message_id.to_string(),
            model: model.to_string(),
            index: 0,
            started_at: Instant::now(),
            writer: ReplyWriter::new(history.clone(), message_id),
            save_failed: false,
        };
        (request_id, sink)
    }

    fn emit(&self, event: ChatEvent) {
        // No window listening is not an error: the reply is still stored.
        let _ = event.emit(&self.app);
    }

    /// Tells the UI that the history could not store the reply (once per run of failures);
    /// the text keeps streaming and the next commit retries it.
    fn saved(&mut self, result: Result<(), AppError>) {
        match result {
            Ok(()) => self.save_failed = false,
            // The reply was deleted while it streamed (its chat deleted, regenerated or
            // edited): there is nothing left to save it into, and nothing to report.
            Err(e) if e.kind == AppErrorKind::NotFound => {}
            Err(e) => {
                eprintln!("minibar: cannot save the reply: {}", e.message);
                if !self.save_failed {
                    self.save_failed = true;
                    self.emit(ChatEvent::SaveFailed {
                        request_id: self.request_id.clone(),
                        session_id: self.session_id.clone(),
                        message_id: self.message_id.clone(),
                        error: AppError::io(format!(
                            "This reply could not be saved to the chat history: {}",
                            e.message
                        )),
                    });
                }
            }
        }
    }
}

impl<R: Runtime> ChatSink for StreamSink<R> {
    fn started(&mut self) {
        self.emit(ChatEvent::Started {
            request_id: self.request_id.clone(),
            session_id: self.session_id.clone(),
            message_id: self.message_id.clone(),
            model: self.model.clone(),
        });
    }

    fn piece(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        // Batched: what the UI saw survives a kill, but for the last `FLUSH_EVERY` of it.
        let saved = self.writer.push(text);
        self.saved(saved);
        self.emit(ChatEvent::Token {
            request_id: self.request_id.clone(),
            session_id: self.session_id.clone(),
            message_id: self.message_id.clone(),
            index: self.index,
            text: text.to_string(),
        });
        self.index += 1;
    }

    fn finished(mut self: Box<Self>, outcome: Result<GenerationStats, AppError>) {
        if let Ok(mut g) = self.generations.lock() {
            g.remove(&self.request_id);
        }
        let total_ms = self.started_at.elapsed().as_secs_f64() * 1e3;
        let outcome = match outcome {
            Err(e) if e.kind == AppErrorKind::Cancelled => Ok(GenerationStats {
                prompt_tokens: 0,
                generated_tokens: self.index as u64,
                ttft_ms: 0.0,
                tokens_per_second: 0.0,
                total_ms,
                stop_reason: StopReason::Stopped,
            }),
            other => other,
        };
        let writer = std::mem::replace(
            &mut self.writer,
            ReplyWriter::new(self.history.clone(), &self.message_id),
        );
        match outcome {
            Ok(mut stats) => {
                stats.total_ms = total_ms;
                let status = if stats.stop_reason == StopReason::Stopped {
                    MessageStatus::Stopped
                } else {
                    MessageStatus::Done
                };
                let saved = writer.finish(status, Some(&stats), None);
                self.saved(saved);
                self.emit(ChatEvent::Done {
                    request_id: self.request_id.clone(),
                    session_id: self.session_id.clone(),
                    message_id: self.message_id.clone(),
                    stats,
                });
            }
            Err(error) => {
                let saved = writer.finish(MessageStatus::Error, None, Some(&error));
                self.saved(saved);
                self.emit(ChatEvent::Error {
                    request_id: self.request_id.clone(),
                    session_id: self.session_id.clone(),
                    message_id: self.message_id.clone(),
                    error,
                    stats: None,
                });
            }
        }
    }
}

/// Builds the job for a session whose last message is the user's turn.
pub fn job_for(
    history: &History,
    session_id: &str,
    until_message: &str,
    system_prompt: &str,
) -> Result<Vec<(crate::types::Role, String)>, AppError> {
    let session = history.open_session(session_id)?;
    let mut messages = Vec::new();
    if !system_prompt.trim().is_empty() {
        messages.push((crate::types::Role::System, system_prompt.to_string()));
    }
    for m in session.messages {
        if m.id == until_message {
            break;
        }
        if m.status == MessageStatus::Error || m.content.is_empty() {
            continue;
        }
        messages.push((m.role, m.content));
    }
    Ok(messages)
}

/// Fills a job's fixed parts (one argument per field: a constructor, not a decision).
#[allow(clippy::too_many_arguments)]
pub fn chat_job(
    model_id: &str,
    model_path: std::path::PathBuf,
    messages: Vec<(crate::types::Role, String)>,
    params: crate::types::SamplingParams,
    context_length: u64,
    cancel: CancelToken,
    memory: minibar_fit::LoadRequest,
    library: minibar_hub::library::LibraryPaths,
) -> ChatJob {
    ChatJob {
        model_id: model_id.to_string(),
        model_path,
        messages,
        params,
        context_length,
        cancel,
        memory,
        library: Some(library),
    }
}
