//! The HTTP surface: the router, the API-key check, and parsing bodies into typed requests
//! with errors in the API's shape.

mod ollama;
mod openai;

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, DefaultBodyLimit, Request, State},
    http::{header, StatusCode, Uri},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
    Json, Router,
};
use serde::de::DeserializeOwned;

use crate::{
    errors::ApiError,
    scheduler::{ModelTarget, Scheduler},
};

/// What every route sees.
pub(crate) struct AppState {
    /// The engine thread's queue.
    pub scheduler: Scheduler,
    /// The key clients must present, when one is required.
    pub api_key: Option<String>,
    /// The largest body accepted, in bytes.
    pub body_limit: usize,
    /// Where the models requests may name are installed.
    pub library: minibar_hub::library::LibraryPaths,
}

/// Shared state handle.
pub(crate) type Shared = Arc<AppState>;

/// Every route, behind the key check and the body limit. Without a `cors` layer (no origin
/// allowed) browsers refuse cross-origin calls, so a web page cannot drive the local model;
/// with one, it is outermost, so a preflight (which carries no key) is answered.
pub(crate) fn router(state: Shared, cors: Option<tower_http::cors::CorsLayer>) -> Router {
    let router = Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/models", get(openai::models))
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/tags", get(ollama::tags))
        .route("/api/ps", get(ollama::ps))
        .route("/api/show", post(ollama::show))
        .route("/api/version", get(ollama::version))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_key))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Refuses requests without the configured key (`Authorization: Bearer <key>`).
async fn require_key(State(state): State<Shared>, request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    if let Some(key) = &state.api_key {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), key.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first differing byte, so timing does not leak the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a JSON body, turning every failure into a 4xx in the API's shape.
pub(crate) fn parse<T: DeserializeOwned>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(state.body_limit)
        } else {
            ApiError::BadJson(r.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadJson(e.to_string()))
}

/// The model a request names, or a 404.
pub(crate) fn check_model(state: &AppState, model: &str) -> Result<ModelTarget, ApiError> {
    state.scheduler.resolve(&state.library, model)
}

/// Sequences decoding and requests waiting, as JSON.
async fn metrics(State(state): State<Shared>) -> Json<serde_json::Value> {
    use std::sync::atomic::Ordering;
    let load = state.scheduler.load();
    let limits = state.scheduler.limits();
    Json(serde_json::json!({
        "active_sequences": load.active.load(Ordering::SeqCst),
        "queued_requests": load.queued.load(Ordering::SeqCst),
        "max_sequences": limits.max_seqs,
        "max_queue": limits.queue,
    }))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}
