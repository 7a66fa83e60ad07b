//! The TypeScript contract (`ui/src/lib/bindings.ts`), generated from the commands and types
//! by tauri-specta so the UI and the shell cannot drift. `MINIBAR_UPDATE_BINDINGS=1 cargo test
//! -p minibar-app --features custom-protocol --test commands bindings` rewrites it; the same
//! test fails when the committed file is stale.

use serde::Serialize;
use specta::Type;
use specta_typescript::{BigIntExportBehavior, Typescript};
use tauri::Runtime;

use crate::types::{
    BenchFinished, BenchProgress, ChatEvent, DownloadProgress, MemoryUpdate, QuantizeProgress,
    Settings, View, SETTINGS_FILE, SETTINGS_KEY,
};

/// Where the generated file lives.
pub const BINDINGS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/lib/bindings.ts");

/// Where tauri-plugin-store keeps the settings, exported as the constant `SETTINGS_STORE`.
#[derive(Serialize, Type)]
struct SettingsStore {
    file: &'static str,
    key: &'static str,
}

/// Lists the events once, for tauri-specta and for the `Events` type of the header.
macro_rules! events {
    ($($t:ident),* $(,)?) => {
        (
            tauri_specta::collect_events![$($t),*],
            [$((stringify!($t), <$t as tauri_specta::Event>::NAME)),*],
        )
    };
}

/// `chat-event` → `chatEvent`, the key tauri-specta gives each event.
fn camel(kebab: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in kebab.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The contract's tauri-specta builder for the runtime type `$r` (`tauri::Wry` in the app,
/// `tauri::test::MockRuntime` in tests), with the header the generated file starts with. A
/// macro because the command list names generic commands at a concrete runtime.
#[macro_export]
macro_rules! specta_builder {
    ($r:ty) => {
        $crate::bindings::finish::<$r>(tauri_specta::collect_commands![
            minibar_app::commands::app::app_info,
            minibar_app::commands::app::startup_notices,
            minibar_app::commands::chat::list_sessions,
            minibar_app::commands::chat::search_sessions,
            minibar_app::commands::chat::open_session,
            minibar_app::commands::chat::create_session,
            minibar_app::commands::chat::delete_session,
            minibar_app::commands::chat::export_session_markdown,
            minibar_app::commands::chat::send_message::<$r>,
            minibar_app::commands::chat::regenerate::<$r>,
            minibar_app::commands::chat::edit_and_resend::<$r>,
            minibar_app::commands::chat::stop_generation,
            minibar_app::commands::models::list_catalog::<$r>,
            minibar_app::commands::models::what_if_table,
            minibar_app::commands::models::search_hub::<$r>,
            minibar_app::commands::models::download_repo::<$r>,
            minibar_app::commands::models::memory_status,
            minibar_app::commands::models::disk_usage,
            minibar_app::commands::models::library_folders,
            minibar_app::commands::models::start_download::<$r>,
            minibar_app::commands::models::pause_download,
            minibar_app::commands::models::resume_download::<$r>,
            minibar_app::commands::models::cancel_download,
            minibar_app::commands::models::delete_model,
            minibar_app::commands::models::quantize_model::<$r>,
            minibar_app::commands::models::cancel_quantize,
            minibar_app::commands::bench::start_benchmark::<$r>,
            minibar_app::commands::bench::cancel_benchmark,
            minibar_app::commands::bench::list_bench_runs,
            minibar_app::commands::bench::get_bench_run,
            minibar_app::commands::bench::bench_reference,
            minibar_app::commands::bench::export_bench_run,
            minibar_app::commands::app::set_hub_token,
            minibar_app::commands::app::has_hub_token,
            minibar_app::commands::app::set_launch_at_login::<$r>,
            minibar_app::commands::app::set_local_server::<$r>,
            minibar_app::commands::app::local_server_status,
            minibar_app::commands::app::cluster_status,
            minibar_app::commands::app::settings_changed::<$r>,
            minibar_app::commands::app::hide_window::<$r>,
            minibar_app::commands::app::open_view::<$r>,
            minibar_app::commands::app::open_external::<$r>,
        ])
    };
}

/// Adds the events, extra types and constants to the commands, and builds the file header
/// (with an `Events` type naming each event's payload, keyed as tauri-specta keys `events`).
pub fn finish<R: Runtime>(
    commands: tauri_specta::Commands<R>,
) -> (tauri_specta::Builder<R>, String) {
    let (events, names) = events![
        ChatEvent,
        DownloadProgress,
        QuantizeProgress,
        MemoryUpdate,
        BenchProgress,
        BenchFinished,
    ];
    let events_type = names
        .iter()
        .map(|(ty, name)| format!("  {}: {ty};", camel(name)))
        .collect::<Vec<_>>()
        .join("\n");
    let header = format!(
        "// @ts-nocheck\n\
         /**\n * The contract between Minibar's UI and its Rust shell (`src-tauri/`), generated by\n \
         * tauri-specta from the Rust types: do not edit; rerun the bindings test with\n \
         * MINIBAR_UPDATE_BINDINGS=1. Only `api.ts` may import `commands` and `events` from here.\n */\n\n\
         /** Payload type of each event, by the key of `events`. */\n\
         export type Events = {{\n{events_type}\n}};\n"
    );
    let builder = tauri_specta::Builder::<R>::new()
        .commands(commands)
        .events(events)
        .typ::<Settings>()
        .typ::<View>()
        .constant(
            "SETTINGS_STORE",
            SettingsStore {
                file: SETTINGS_FILE,
                key: SETTINGS_KEY,
            },
        );
    (builder, header)
}

/// The exporter settings the UI was written against: u64 as `number`.
pub fn typescript(header: String) -> Typescript {
    Typescript::default()
        .bigint(BigIntExportBehavior::Number)
        .header(header)
}

/// The generated file's text.
pub fn render() -> Result<String, specta_typescript::ExportError> {
    let (builder, header) = crate::specta_builder!(tauri::Wry);
    builder.export_str(typescript(header))
}
