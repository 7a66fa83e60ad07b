//! Errors as API clients expect them: an HTTP status and OpenAI's error JSON
//! (`{"error": {"message", "type", "param", "code"}}`), which Ollama's clients also read.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

/// Why a request failed, with the status it is answered with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON the endpoint takes (syntax, types, missing fields).
    #[error("invalid request body: {0}")]
    BadJson(String),
    /// The request is well-formed but asks for something impossible.
    #[error("{0}")]
    Invalid(String),
    /// The prompt does not leave room for a reply in the context window.
    #[error("the prompt is {prompt} tokens; the model's context window is {context} tokens")]
    ContextOverflow {
        /// Prompt tokens.
        prompt: usize,
        /// Context window in tokens.
        context: usize,
    },
    /// No such model is served.
    #[error("the model `{0}` does not exist or is not loaded; GET /v1/models lists them")]
    UnknownModel(String),
    /// A catalog model that is not on this machine.
    #[error("the model `{0}` is in Minibar's catalog but not installed: run `minibar pull {0}`")]
    NotInstalled(String),
    /// The body is larger than the server accepts.
    #[error("the request body is larger than the {0}-byte limit")]
    TooLarge(usize),
    /// Missing or wrong API key.
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    /// The queue of waiting requests is full.
    #[error("the server is busy ({0} requests waiting); retry shortly")]
    Busy(usize),
    /// No such endpoint.
    #[error("no endpoint {0}")]
    NotFound(String),
    /// The model cannot be loaded now (it would not fit, or its files are unreadable).
    #[error("{0}")]
    Unavailable(String),
    /// The engine failed or stopped.
    #[error("{0}")]
    Engine(String),
    /// JSON was asked for (`response_format`, Ollama's `format`) and the model's reply has
    /// no JSON object in it.
    #[error("the model's reply is not a JSON object (it began: {0:?}); ask for JSON in the messages, or retry")]
    NotJson(String),
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadJson(_) | Self::Invalid(_) | Self::ContextOverflow { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::UnknownModel(_) | Self::NotInstalled(_) | Self::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Engine(_) | Self::NotJson(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `type` and `code` for this error.
    fn kind(&self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::BadJson(_) | Self::Invalid(_) | Self::TooLarge(_) | Self::NotFound(_) => {
                ("invalid_request_error", None)
            }
            Self::ContextOverflow { .. } => {
                ("invalid_request_error", Some("context_length_exceeded"))
            }
            Self::UnknownModel(_) | Self::NotInstalled(_) => {
                ("invalid_request_error", Some("model_not_found"))
            }
            Self::Unauthorized => ("invalid_request_error", Some("invalid_api_key")),
            Self::Busy(_) => ("rate_limit_error", Some("rate_limit_exceeded")),
            Self::Unavailable(_) | Self::Engine(_) => ("server_error", None),
            Self::NotJson(_) => ("server_error", Some("invalid_json_output")),
        }
    }

    /// The error as OpenAI's JSON body.
    pub fn body(&self) -> serde_json::Value {
        let (kind, code) = self.kind();
        serde_json::json!({
            "error": {"message": self.to_string(), "type": kind, "param": null, "code": code}
        })
    }
}

impl From<minibar_engine::EngineError> for ApiError {
    fn from(e: minibar_engine::EngineError) -> Self {
        use minibar_engine::EngineError as E;
        match e {
            E::ContextOverflow { prompt, context } => Self::ContextOverflow { prompt, context },
            E::EmptyPrompt => Self::Invalid("the prompt is empty".into()),
            E::InvalidRequest(m) => Self::Invalid(m),
            other => Self::Engine(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if matches!(self, Self::Busy(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
