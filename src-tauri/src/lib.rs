//! Minibar's app shell: a menu-bar icon, a popover chat and a large window for Models,
//! Benchmark and Settings, over the same crates the CLI uses. [`configure`] holds everything
//! that is not desktop chrome (commands, events, state, the settings store) and is shared by
//! the app ([`run`]) and the tests (on Tauri's mock runtime).

#![forbid(unsafe_code)]

// Lets `specta_builder!` name the commands the same way inside this crate and in its tests.
extern crate self as minibar_app;

pub mod bench;
pub mod bindings;
pub mod cluster;
pub mod commands;
pub mod engine_worker;
pub mod generation;
pub mod history;
pub mod keychain;
pub mod local_server;
pub mod models;
pub mod recover;
pub mod settings_store;
pub mod state;
pub mod tray;
pub mod types;
pub mod windows;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tauri::{Manager, Runtime};
use tauri_specta::Event;

use crate::engine_worker::{EngineFactory, EngineWorker, MlxEngine};
use crate::history::History;
use crate::state::AppState;

/// Environment variable that relocates the app's data (history, settings): tests, e2e.
pub const DATA_DIR_ENV: &str = "MINIBAR_DATA_DIR";
/// Command-line flag: show the chat at launch and keep it open when it loses focus (desktops
/// without a tray host, and the end-to-end tests).
pub const SHOW_FLAG: &str = "--show";

/// Setup steps that come after [`configure`]'s (Tauri keeps a single setup hook).
pub type ExtraSetup<R> =
    Box<dyn FnOnce(&mut tauri::App<R>) -> Result<(), Box<dyn std::error::Error>> + Send>;

/// How [`configure`] sets the app up.
pub struct AppOptions<R: Runtime> {
    /// The data folder; None: `MINIBAR_DATA_DIR`, else the platform's app data folder.
    pub data_dir: Option<PathBuf>,
    /// Makes the engine, on the engine thread.
    pub engine: EngineFactory,
    /// Runs once the state is managed (the desktop chrome).
    pub then: Option<ExtraSetup<R>>,
}

impl<R: Runtime> Default for AppOptions<R> {
    fn default() -> Self {
        AppOptions {
            data_dir: None,
            engine: Box::new(|| Box::new(MlxEngine::default())),
            then: None,
        }
    }
}

fn data_dir<R: Runtime>(app: &tauri::App<R>, explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(d) = explicit {
        return Ok(d);
    }
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    app.path()
        .app_data_dir()
        .map_err(|e| format!("no app data folder: {e}"))
}

/// Adds Minibar's commands, events, state and settings store to `builder`.
/// `specta` is `specta_builder!(<the runtime>)`: the commands and events.
pub fn configure<R: Runtime>(
    builder: tauri::Builder<R>,
    specta: (tauri_specta::Builder<R>, String),
    options: AppOptions<R>,
) -> tauri::Builder<R> {
    let (specta, _) = specta;
    let engine = std::sync::Mutex::new(Some(options.engine));
    let explicit_dir = options.data_dir;
    let then = options.then;
    builder
        .plugin(tauri_plugin_store::Builder::new().build())
        .invoke_handler(specta.invoke_handler())
        .setup(move |app| {
            specta.mount_events(app);
            let dir = data_dir(app, explicit_dir.clone())?;
            // A damaged database is set aside (and the user told), not a reason not to start.
            let history_path = dir.join("history.sqlite3");
            let bench_path = minibar_bench::History::default_path();
            let mut notices = Vec::new();
            notices.extend(
                recover::set_aside_if_damaged(&history_path, "Your chat history")
                    .map_err(|e| e.message)?,
            );
            notices.extend(
                recover::set_aside_if_damaged(&bench_path, "Your benchmark history")
                    .map_err(|e| e.message)?,
            );
            let history = History::open(&history_path).map_err(|e| e.message)?;
            // Shared with `minibar bench`: runs from either show in both.
            let bench = bench::Bench::open(&bench_path).map_err(|e| e.message)?;
            let engine = engine
                .lock()
                .ok()
                .and_then(|mut e| e.take())
                .ok_or("the app was set up twice")?;
            // A user models.toml that is not valid is set aside, not a reason not to start.
            let (catalog, catalog_notice) =
                minibar_catalog::Catalog::load_or_set_aside(None).map_err(|e| e.to_string())?;
            notices.extend(catalog_notice);
            // The folders chosen in Settings; the defaults (with a warning) when they are
            // unusable, so a moved disk does not stop the app from starting. Loading opens the
            // settings store: the one store the UI can reach (it may get, not load, stores).
            let library = settings_store::load(app)
                .and_then(|s| models::folders::library_paths(&s))
                .unwrap_or_else(|e| {
                    eprintln!("minibar: {}; using the default model folders", e.message);
                    minibar_hub::library::LibraryPaths::from_env()
                });
            // What a quantization killed with the app left in the store (no job runs yet).
            models::quantize::remove_leftovers(&library.store);
            app.manage(local_server::LocalServer::default());
            app.manage(AppState {
                history: Arc::new(history),
                engine: EngineWorker::spawn(engine)?,
                generations: Default::default(),
                downloads: Default::default(),
                quantizations: Default::default(),
                bench: Arc::new(bench),
                catalog,
                library: std::sync::RwLock::new(library),
                data_dir: dir,
                notices,
            });
            let then = match then {
                Some(then) => then(app),
                None => Ok(()),
            };
            // After the desktop chrome, so the tray is there to show it.
            local_server::restore(app.handle());
            then
        })
}

/// Whether any of the app's windows is on screen.
fn any_window_visible<R: Runtime>(app: &tauri::AppHandle<R>) -> bool {
    app.webview_windows()
        .values()
        .any(|w| w.is_visible().unwrap_or(false))
}

/// Sends `memory-update` every second from a thread of its own, while a window shows it: a
/// hidden UI would only spend CPU redrawing the gauge (the idle budget is near 0%), and a
/// window that opens asks `memory_status` for its first paint.
fn start_memory_updates<R: Runtime>(app: tauri::AppHandle<R>) {
    std::thread::Builder::new()
        .name("minibar-memory".into())
        .spawn(move || {
            let mut sampler = minibar_fit::MemorySampler::new();
            loop {
                if !any_window_visible(&app) {
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                let loaded = app.state::<AppState>().engine.loaded();
                let sample = models::memory::machine_memory(&sampler.sample(), loaded);
                let _ = types::MemoryUpdate(sample).emit(&app);
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .ok();
}

/// The global shortcut that opens the chat.
const SHORTCUT: &str = "CommandOrControl+Shift+Space";

/// Runs the desktop app.
pub fn run() {
    let show = std::env::args().any(|a| a == SHOW_FLAG);
    let builder = tauri::Builder::default()
        // First, so a second launch hands over before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            let _ = windows::show_popover(app);
        }))
        .plugin(tauri_plugin_positioner::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ));
    let desktop: ExtraSetup<tauri::Wry> = Box::new(move |app| {
        #[cfg(target_os = "macos")]
        app.set_activation_policy(tauri::ActivationPolicy::Accessory);
        // The popover's webview (a WebKit process, most of the idle memory) is created on the
        // first click, not at launch: an app that sits in the menu bar all day should not hold it.
        if show {
            windows::create_popover(app.handle(), true).map_err(|e| e.message)?;
        }
        let tray = match tray::build(app.handle()) {
            Ok(_) => "yes",
            Err(e) => {
                eprintln!("minibar: no tray icon ({e}); use {SHORTCUT} to open the chat");
                "no"
            }
        };
        if let Err(e) = register_shortcut(app.handle()) {
            eprintln!("minibar: the shortcut {SHORTCUT} is not available: {e}");
        }
        start_memory_updates(app.handle().clone());
        if show {
            windows::show_popover(app.handle()).map_err(|e| e.message)?;
        }
        // The end-to-end tests wait for this line.
        eprintln!("minibar: ready (tray: {tray})");
        Ok(())
    });
    let options = AppOptions {
        then: Some(desktop),
        ..AppOptions::default()
    };
    let app = match configure(builder, specta_builder!(tauri::Wry), options)
        .build(tauri::generate_context!())
    {
        Ok(app) => app,
        Err(e) => {
            eprintln!("minibar: {e}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| {
        if let tauri::RunEvent::Exit = event {
            local_server::shutdown(app);
        }
    });
}

fn register_shortcut<R: Runtime>(
    app: &tauri::AppHandle<R>,
) -> Result<(), Box<dyn std::error::Error>> {
    use tauri_plugin_global_shortcut::{Builder, ShortcutState};
    app.plugin(
        Builder::new()
            .with_shortcuts([SHORTCUT])?
            .with_handler(|app, _shortcut, event| {
                if event.state == ShortcutState::Pressed {
                    let _ = windows::toggle_popover(app);
                }
            })
            .build(),
    )?;
    Ok(())
}
