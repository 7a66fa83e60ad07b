//! The menu-bar icon and its menu. A left click toggles the popover under the icon (macOS,
//! Windows); Linux's AppIndicator delivers no clicks, so there the icon opens the menu, whose
//! first item opens the chat.

use tauri::image::Image;
use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Runtime};
use tauri_plugin_positioner::{Position, WindowExt};

use crate::types::View;
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
    builder.build(app)
}
