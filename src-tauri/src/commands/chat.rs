//! Chat sessions and generation.

use tauri::{AppHandle, Runtime, State};

use crate::cluster::{self, Route};
use crate::engine_worker::{CancelToken, ChatSink};
use crate::generation::{chat_job, job_for, StreamSink};
use crate::history::{to_markdown, NewMessage};
use crate::models::{catalog, library};
use crate::settings_store;
use crate::state::AppState;
use crate::types::{
    AppError, AppErrorKind, AppResult, ChatSession, GenerationStarted, MarkdownExport,
    MessageStatus, Role, SamplingParams, SearchHit, SendRequest, SessionSummary, Settings,
};

/// Every session, newest first.
#[tauri::command]
#[specta::specta]
pub async fn list_sessions(state: State<'_, AppState>) -> AppResult<Vec<SessionSummary>> {
    state.history.list_sessions()
}

/// Full-text search over titles and messages, best first.
#[tauri::command]
#[specta::specta]
pub async fn search_sessions(
    state: State<'_, AppState>,
    query: String,
) -> AppResult<Vec<SearchHit>> {
    state.history.search(&query)
}

/// A session with all its messages.
#[tauri::command]
#[specta::specta]
pub async fn open_session(state: State<'_, AppState>, id: String) -> AppResult<ChatSession> {
    state.history.open_session(&id)
}

/// An empty session; `model` null uses the default model.
#[tauri::command]
#[specta::specta]
pub async fn create_session(
    state: State<'_, AppState>,
    model: Option<String>,
) -> AppResult<ChatSession> {
    state.history.create_session(model)
}

/// Removes a session and its messages (stops its generation first).
#[tauri::command]
#[specta::specta]
pub async fn delete_session(state: State<'_, AppState>, id: String) -> AppResult<()> {
    state.stop_session(&id);
    state.history.delete_session(&id)
}

/// The chat as Markdown, with a suggested file name.
#[tauri::command]
#[specta::specta]
pub async fn export_session_markdown(
    state: State<'_, AppState>,
    id: String,
) -> AppResult<MarkdownExport> {
    Ok(to_markdown(&state.history.open_session(&id)?))
}

/// Finds where a variant is installed.
fn model_path(state: &AppState, variant_id: &str) -> AppResult<std::path::PathBuf> {
    let installed = library::installed(&state.catalog, &state.library())?;
    if installed.is_empty() {
        return Err(AppError::new(
            AppErrorKind::NoModel,
            "No model is installed: download one in Models.",
        ));
    }
    installed
        .into_iter()
        .find(|i| i.variant_id == variant_id)
        .map(|i| i.path)
        .ok_or_else(|| {
            AppError::new(
                AppErrorKind::NoModel,
                format!(
                    "{variant_id} is not installed: download it in Models or pick another model."
                ),
            )
        })
}

/// What the memory gate is asked before `model` loads for a chat: the headroom setting, and
/// whether the user chose "Use anyway" for it.
pub(crate) fn load_request(settings: &Settings, model: &str) -> minibar_fit::LoadRequest {
    minibar_fit::LoadRequest {
        force: settings.forced_models.iter().any(|m| m == model),
        thresholds: minibar_fit::Thresholds::with_headroom(settings.memory_headroom_bytes),
        ..Default::default()
    }
}

/// Where a chat with `model` (installed at `path`) goes: the cluster that is up when it holds
/// the model and the model does not fit this Mac (nor did the user force it here); an error
/// when the cluster holds another model; else this Mac.
fn route(
    state: &AppState,
    settings: &Settings,
    model: &str,
    path: &std::path::Path,
) -> AppResult<Route> {
    let Ok(socket) = cluster::socket() else {
        return Ok(Route::Local);
    };
    let Ok(Some(status)) = cluster::query(&socket) else {
        return Ok(Route::Local);
    };
    let installed = library::installed(&state.catalog, &state.library())?;
    let Some(i) = installed.iter().find(|i| i.variant_id == model) else {
        return Ok(Route::Local);
    };
    let memory = minibar_fit::snapshot();
    let downloads = Default::default();
    let ctx = catalog::Context {
        settings,
        memory: &memory,
        held_by_minibar: state.engine.loaded().map(|(_, b)| b).unwrap_or(0),
        installed: &installed,
        downloads: &downloads,
        cluster: None,
    };
    let fits_here =
        catalog::fits_here(i, &ctx) || settings.forced_models.iter().any(|m| m == model);
    cluster::route(path, fits_here, &socket, Some(&status))
}

/// Starts a reply into a fresh assistant message after the session's last message.
fn start_reply<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
    session_id: &str,
    model: &str,
    params: Option<SamplingParams>,
    user_message_id: Option<String>,
) -> AppResult<GenerationStarted> {
    let path = model_path(state, model)?;
    let settings = settings_store::load(app)?;
    let assistant = state.history.add_message(
        session_id,
        NewMessage {
            role: Role::Assistant,
            content: String::new(),
            model: Some(model.to_string()),
            status: MessageStatus::Streaming,
        },
    )?;
    state.history.set_session_model(session_id, model)?;
    let messages = job_for(
        &state.history,
        session_id,
        &assistant.id,
        &settings.system_prompt,
    )?;
    let cancel = CancelToken::new();
    let (request_id, sink) = StreamSink::register(
        app.clone(),
        state.history.clone(),
        state.generations.clone(),
        session_id,
        &assistant.id,
        model,
        cancel.clone(),
    );
    let params = params.unwrap_or(settings.sampling.clone());
    match route(state, &settings, model, &path) {
        Ok(Route::Local) => {}
        Ok(Route::Cluster(socket)) => {
            std::thread::Builder::new()
                .name("minibar-cluster-chat".into())
                .spawn(move || cluster::chat(&socket, &messages, &params, &cancel, Box::new(sink)))
                .map_err(|e| AppError::io(format!("cannot start the cluster chat: {e}")))?;
            return Ok(started(
                request_id,
                session_id,
                user_message_id,
                assistant.id,
            ));
        }
        Err(e) => {
            Box::new(sink).finished(Err(e));
            return Ok(started(
                request_id,
                session_id,
                user_message_id,
                assistant.id,
            ));
        }
    }
    let memory = load_request(&settings, model);
    let job = chat_job(
        model,
        path,
        messages,
        params,
        settings.context_length,
        cancel,
        memory,
        state.library(),
    );
    state.engine.submit(job, Box::new(sink))?;
    Ok(started(
        request_id,
        session_id,
        user_message_id,
        assistant.id,
    ))
}

/// What a send, regenerate or edit answers once the reply is under way.
fn started(
    request_id: String,
    session_id: &str,
    user_message_id: Option<String>,
    assistant_message_id: String,
) -> GenerationStarted {
    GenerationStarted {
        request_id,
        session_id: session_id.to_string(),
        user_message_id,
        assistant_message_id,
    }
}

/// Stores the user message, starts a reply.
#[tauri::command]
#[specta::specta]
pub async fn send_message<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    request: SendRequest,
) -> AppResult<GenerationStarted> {
    if request.content.trim().is_empty() {
        return Err(AppError::invalid("The message is empty."));
    }
    // Fail before storing anything when the model is missing.
    model_path(&state, &request.model)?;
    let user = state.history.add_message(
        &request.session_id,
        NewMessage {
            role: Role::User,
            content: request.content,
            model: None,
            status: MessageStatus::Done,
        },
    )?;
    start_reply(
        &app,
        &state,
        &request.session_id,
        &request.model,
        request.params,
        Some(user.id),
    )
}

/// Replaces the session's last assistant message with a new reply.
#[tauri::command]
#[specta::specta]
pub async fn regenerate<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    session_id: String,
    model: String,
    params: Option<SamplingParams>,
) -> AppResult<GenerationStarted> {
    model_path(&state, &model)?;
    state.stop_session(&session_id);
    let session = state.history.open_session(&session_id)?;
    let last_user = session
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .ok_or_else(|| AppError::invalid("There is no message to answer yet."))?;
    state.history.truncate_after(&session_id, &last_user.id)?;
    start_reply(&app, &state, &session_id, &model, params, None)
}

/// Replaces a user message's text, drops every message after it, replies.
#[tauri::command]
#[specta::specta]
pub async fn edit_and_resend<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    session_id: String,
    message_id: String,
    content: String,
    model: String,
    params: Option<SamplingParams>,
) -> AppResult<GenerationStarted> {
    if content.trim().is_empty() {
        return Err(AppError::invalid("The message is empty."));
    }
    model_path(&state, &model)?;
    let (owner, message) = state.history.message(&message_id)?;
    if owner != session_id || message.role != Role::User {
        return Err(AppError::invalid(
            "Only your own messages in this chat can be edited.",
        ));
    }
    state.stop_session(&session_id);
    state.history.set_content(&message_id, &content)?;
    state.history.truncate_after(&session_id, &message_id)?;
    start_reply(&app, &state, &session_id, &model, params, Some(message_id))
}

/// Stops a request; its stream ends with `done` (stopReason `stopped`).
#[tauri::command]
#[specta::specta]
pub async fn stop_generation(state: State<'_, AppState>, request_id: String) -> AppResult<()> {
    let g = state
        .generations
        .lock()
        .map_err(|_| AppError::engine("generation registry is unavailable"))?;
    match g.get(&request_id) {
        Some(r) => {
            r.cancel.cancel();
            Ok(())
        }
        // Already finished: nothing to stop.
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_load_is_forced_only_for_models_the_user_forced() {
        let settings = Settings {
            forced_models: vec!["big@q4".into()],
            memory_headroom_bytes: 3_000_000_000,
            ..Settings::default()
        };
        let forced = load_request(&settings, "big@q4");
        assert!(forced.force);
        assert_eq!(forced.thresholds.headroom, 3_000_000_000);
        assert!(!load_request(&settings, "other@q4").force);
    }
}
