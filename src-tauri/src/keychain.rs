//! The Hugging Face token in the OS keychain (Keychain on macOS, the Secret Service on Linux).

use crate::types::{AppError, AppResult};

/// The keychain item's service name.
const SERVICE: &str = "app.minibar.desktop";
/// The keychain item's account name.
const ACCOUNT: &str = "huggingface-token";

fn entry() -> AppResult<keyring::Entry> {
    keyring::Entry::new(SERVICE, ACCOUNT).map_err(explain)
}

/// Turns a keyring failure into a message a user can act on.
fn explain(e: keyring::Error) -> AppError {
    match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            AppError::io(format!(
                "The OS keychain is not available ({inner}). On Linux, Minibar stores the token \
                 through the Secret Service: run a keyring daemon (GNOME Keyring or KeePassXC) \
                 in your desktop session and unlock it."
            ))
        }
        other => AppError::io(format!("The OS keychain refused the token: {other}")),
    }
}

/// Stores the token; `None` (or an empty string) deletes it.
pub fn set_token(token: Option<&str>) -> AppResult<()> {
    let entry = entry()?;
    match token.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => entry.set_password(t).map_err(explain),
        None => match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(explain(e)),
        },
    }
}

/// The stored token, if any.
pub fn token() -> AppResult<Option<String>> {
    match entry()?.get_password() {
        Ok(t) => Ok(Some(t)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(explain(e)),
    }
}
