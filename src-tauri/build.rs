//! Generates the app's command permissions so that capabilities can allow each command by name
//! (an app manifest turns off Tauri's default of allowing every app command to every window).

/// Every command the UI may call; kept in step with `commands::ALL` by a unit test.
const COMMANDS: &[&str] = &[
    "app_info",
    "startup_notices",
    "list_sessions",
    "search_sessions",
    "open_session",
    "create_session",
    "delete_session",
    "export_session_markdown",
    "send_message",
    "regenerate",
    "edit_and_resend",
    "stop_generation",
    "list_catalog",
    "what_if_table",
    "search_hub",
    "download_repo",
    "memory_status",
    "disk_usage",
    "library_folders",
    "start_download",
    "pause_download",
    "resume_download",
    "cancel_download",
    "delete_model",
    "quantize_model",
    "cancel_quantize",
    "start_benchmark",
    "cancel_benchmark",
    "list_bench_runs",
    "get_bench_run",
    "bench_reference",
    "export_bench_run",
    "set_hub_token",
    "has_hub_token",
    "set_launch_at_login",
    "set_local_server",
    "local_server_status",
    "cluster_status",
    "settings_changed",
    "hide_window",
    "open_view",
    "open_external",
];

/// Passes MLX's pinned version (scripts/versions.env, the set-up's source of truth) to the app.
fn mlx_version() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/versions.env");
    println!("cargo:rerun-if-changed={path}");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("MLX_VERSION=")
                    .map(|v| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    println!("cargo:rustc-env=MINIBAR_MLX_VERSION={}", mlx_version());
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed");
}
