//! The Hugging Face token in the OS keychain, through minibar-hub's keychain module, which
//! `minibar pull` reads too: one login serves the app and the command line.

use crate::types::{AppError, AppResult};

fn explain(e: minibar_hub::HubError) -> AppError {
    let text = e.to_string();
    let mut chars = text.chars();
    let sentence = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    };
    AppError::io(format!("{sentence}."))
}

/// Stores the token; `None` (or an empty string) deletes it.
pub fn set_token(token: Option<&str>) -> AppResult<()> {
    minibar_hub::keychain::set_token(token).map_err(explain)
}

/// The stored token, if any.
pub fn token() -> AppResult<Option<String>> {
    minibar_hub::keychain::token().map_err(explain)
}
