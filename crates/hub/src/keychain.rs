//! The Hugging Face token in the OS keychain (Keychain on macOS, the Secret Service on
//! Linux), shared by the app, which saves it, and the command line, which reads it, so a
//! token never sits in a plain settings file.

use crate::error::{HubError, Result};

/// The keychain item's service name.
pub const SERVICE: &str = "app.minibar.desktop";
/// The keychain item's account name.
pub const ACCOUNT: &str = "huggingface-token";

fn entry() -> Result<keyring::Entry> {
    keyring::Entry::new(SERVICE, ACCOUNT).map_err(explain)
}

/// Turns a keyring failure into a message a user can act on.
fn explain(e: keyring::Error) -> HubError {
    HubError::Keychain(match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            format!(
                "the OS keychain is not available ({inner}). On Linux, Minibar keeps the token \
                 through the Secret Service: run a keyring daemon (GNOME Keyring or KeePassXC) \
                 in your desktop session and unlock it, or set HF_TOKEN"
            )
        }
        other => format!("the OS keychain refused the token: {other}"),
    })
}

/// Stores the token; `None` (or an empty string) deletes it.
pub fn set_token(token: Option<&str>) -> Result<()> {
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
pub fn token() -> Result<Option<String>> {
    match entry()?.get_password() {
        Ok(t) => Ok(Some(t)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(explain(e)),
    }
}

/// The keychain item of the local server's API key (`minibar serve` off loopback).
pub const SERVER_KEY_ACCOUNT: &str = "server-api-key";

/// Another secret of Minibar's (same service, its own account), if stored; an `Err` says
/// the keychain cannot be used here (no Secret Service on a headless Linux session, ...).
pub fn secret(account: &str) -> std::result::Result<Option<String>, String> {
    let entry = keyring::Entry::new(SERVICE, account).map_err(|e| e.to_string())?;
    match entry.get_password() {
        Ok(t) => Ok(Some(t)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Stores another secret of Minibar's under `account`.
pub fn set_secret(account: &str, value: &str) -> std::result::Result<(), String> {
    keyring::Entry::new(SERVICE, account)
        .and_then(|e| e.set_password(value))
        .map_err(|e| e.to_string())
}
