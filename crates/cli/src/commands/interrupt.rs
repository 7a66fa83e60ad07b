//! Ctrl-C stops the reply in flight rather than killing the process; a second one exits.

use std::sync::{Mutex, OnceLock};

use minibar_engine::CancelToken;

static CURRENT: OnceLock<Mutex<Option<CancelToken>>> = OnceLock::new();

/// Routes Ctrl-C to `token` until another token is registered.
pub fn cancel_on_ctrl_c(token: &CancelToken) {
    let slot = CURRENT.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            let slot = CURRENT
                .get()
                .and_then(|m| m.lock().ok().and_then(|g| g.clone()));
            match slot {
                Some(t) if !t.is_cancelled() => t.cancel(),
                _ => std::process::exit(130),
            }
        });
        Mutex::new(None)
    });
    if let Ok(mut g) = slot.lock() {
        *g = Some(token.clone());
    }
}
