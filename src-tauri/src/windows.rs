//! The two windows: the compact popover chat (label `main`) and the large window for Models,
//! Benchmark and Settings (label `large`).

use tauri::{
    AppHandle, Manager, Runtime, WebviewUrl, WebviewWindow, WebviewWindowBuilder, WindowEvent,
};

use crate::types::{AppError, AppResult, View};

/// The popover's label.
pub const POPOVER: &str = "main";
/// The large window's label.
pub const LARGE: &str = "large";

fn url(view: View) -> WebviewUrl {
    WebviewUrl::App(format!("index.html{}", view.route()).into())
}

fn io(e: tauri::Error) -> AppError {
    AppError::io(format!("window: {e}"))
}

/// Creates the popover, hidden; it hides itself when it loses focus unless `keep_open`.
pub fn create_popover<R: Runtime>(
    app: &AppHandle<R>,
    keep_open: bool,
) -> AppResult<WebviewWindow<R>> {
    if let Some(w) = app.get_webview_window(POPOVER) {
        return Ok(w);
    }
    let window = WebviewWindowBuilder::new(app, POPOVER, url(View::Chat))
        .title("Minibar")
        .inner_size(380.0, 560.0)
        .resizable(false)
        .decorations(false)
        .skip_taskbar(true)
        .always_on_top(true)
        .visible(false)
        .build()
        .map_err(io)?;
    if !keep_open {
        let w = window.clone();
        window.on_window_event(move |event| {
            if let WindowEvent::Focused(false) = event {
                let _ = w.hide();
            }
        });
    }
    Ok(window)
}

/// Shows the popover and gives it focus.
pub fn show_popover<R: Runtime>(app: &AppHandle<R>) -> AppResult<()> {
    let w = create_popover(app, false)?;
    w.show().map_err(io)?;
    w.set_focus().map_err(io)
}

/// Shows the popover if hidden, hides it if shown.
pub fn toggle_popover<R: Runtime>(app: &AppHandle<R>) -> AppResult<()> {
    let w = create_popover(app, false)?;
    if w.is_visible().unwrap_or(false) {
        w.hide().map_err(io)
    } else {
        show_popover(app)
    }
}

/// Shows the popover and starts a new chat in it (the UI's own new-chat shortcut).
pub fn new_chat<R: Runtime>(app: &AppHandle<R>) -> AppResult<()> {
    show_popover(app)?;
    let w = create_popover(app, false)?;
    let mac = cfg!(target_os = "macos");
    w.eval(format!(
        "location.hash = '#/chat'; window.dispatchEvent(new KeyboardEvent('keydown', \
         {{ key: 'n', metaKey: {mac}, ctrlKey: {}, bubbles: true }}));",
        !mac
    ))
    .map_err(io)
}

/// Opens (or focuses) the large window at `view`.
pub fn show_large<R: Runtime>(app: &AppHandle<R>, view: View) -> AppResult<()> {
    let window = match app.get_webview_window(LARGE) {
        Some(w) => {
            w.eval(format!("location.hash = '{}';", view.route()))
                .map_err(io)?;
            w
        }
        None => WebviewWindowBuilder::new(app, LARGE, url(view))
            .title("Minibar")
            .inner_size(1100.0, 780.0)
            .min_inner_size(720.0, 520.0)
            .build()
            .map_err(io)?,
    };
    window.show().map_err(io)?;
    window.set_focus().map_err(io)
}
