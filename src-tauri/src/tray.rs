//! The menu-bar icon and its menu. A left click toggles the popover under the icon (macOS,
//! Windows); Linux's AppIndicator delivers no clicks, so there the icon opens the menu, whose
//! first item opens the chat.

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_positioner::{Position, WindowExt};

use crate::types::{LocalServerStatus, View};
use crate::windows;

/// The tray glyph: black on transparent, so macOS can tint it as a template image.
const TRAY_ICON: &[u8] = include_bytes!("../../icons/tray-template.png");

fn on_menu<R: Runtime>(app: &AppHandle<R>, event: MenuEvent) {
    let result = match event.id().as_ref() {
        "open" => windows::show_popover(app),
        "new_chat" => windows::new_chat(app),
        "models" => windows::show_large(app, View::Models),
        "bench" => windows::show_large(app, View::Bench),
        "settings" => windows::show_large(app, View::Settings),
        "local_server" => {
            toggle_local_server(app);
            Ok(())
        }
        "quit" => {
            app.exit(0);
            Ok(())
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        eprintln!("minibar: tray menu: {}", e.message);
    }
}

/// The tray's "Local server" item, kept to show the server's state.
struct LocalServerItem<R: Runtime>(CheckMenuItem<R>);

/// The item's text: whether the server is on, and where.
fn local_server_label(status: &LocalServerStatus) -> String {
    match (&status.url, status.running) {
        (Some(url), true) => format!("Local server: on ({url})"),
        _ => "Local server: off".into(),
    }
}

/// Shows the local server's state in the tray menu (nothing without a tray).
pub fn show_local_server<R: Runtime>(app: &AppHandle<R>, status: &LocalServerStatus) {
    if let Some(item) = app.try_state::<LocalServerItem<R>>() {
        let _ = item.0.set_checked(status.running);
        let _ = item.0.set_text(local_server_label(status));
    }
}

/// The menu item turns the server on or off, on the saved port.
fn toggle_local_server<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let running = app
            .state::<crate::local_server::LocalServer>()
            .status()
            .await
            .running;
        let port = crate::settings_store::load(&app)
            .map(|s| s.local_server_port)
            .unwrap_or(11434);
        if let Err(e) = crate::local_server::set(&app, !running, port).await {
            eprintln!("minibar: {}", e.message);
        }
    });
}

fn on_click<R: Runtime>(tray: &TrayIcon<R>, event: TrayIconEvent) {
    let app = tray.app_handle();
    // Lets the positioner know where the icon is.
    tauri_plugin_positioner::on_tray_event(app, &event);
    if let TrayIconEvent::Click {
        button: MouseButton::Left,
        button_state: MouseButtonState::Up,
        ..
    } = event
    {
        // Created here on the first click (see lib.rs), then placed under the icon.
        if let Ok(w) = windows::create_popover(app, false) {
            let _ = w.move_window(Position::TrayBottomCenter);
        }
        if let Err(e) = windows::toggle_popover(app) {
            eprintln!("minibar: tray click: {}", e.message);
        }
    }
}

/// Builds the tray icon. Failing to build it (no tray host at all) is reported, not fatal: the
/// global shortcut and a second launch still open the chat.
pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<TrayIcon<R>> {
    let off = LocalServerStatus {
        running: false,
        url: None,
        error: None,
    };
    let server = CheckMenuItem::with_id(
        app,
        "local_server",
        local_server_label(&off),
        true,
        false,
        None::<&str>,
    )?;
    let menu = Menu::with_items(
        app,
        &[
            &MenuItem::with_id(app, "open", "Open Minibar", true, None::<&str>)?,
            &MenuItem::with_id(app, "new_chat", "New Chat", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "models", "Models…", true, None::<&str>)?,
            &MenuItem::with_id(app, "bench", "Benchmark…", true, None::<&str>)?,
            &MenuItem::with_id(app, "settings", "Settings…", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &server,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "quit", "Quit Minibar", true, None::<&str>)?,
        ],
    )?;
    let builder = TrayIconBuilder::with_id("minibar")
        .icon(Image::from_bytes(TRAY_ICON)?)
        .tooltip("Minibar")
        .menu(&menu)
        // The left click toggles the popover where clicks are delivered; the menu is on the right.
        .show_menu_on_left_click(cfg!(target_os = "linux"))
        .on_menu_event(on_menu)
        .on_tray_icon_event(on_click);
    #[cfg(target_os = "macos")]
    let builder = builder.icon_as_template(true);
    let tray = builder.build(app)?;
    app.manage(LocalServerItem(server));
    Ok(tray)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tray_says_whether_the_server_is_on_and_where() {
        let on = LocalServerStatus {
            running: true,
            url: Some("http://127.0.0.1:11434".into()),
            error: None,
        };
        assert_eq!(
            local_server_label(&on),
            "Local server: on (http://127.0.0.1:11434)"
        );
        let failed = LocalServerStatus {
            running: false,
            url: None,
            error: Some("port taken".into()),
        };
        assert_eq!(local_server_label(&failed), "Local server: off");
    }
}
