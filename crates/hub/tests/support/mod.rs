//! Shared test helpers: the loopback hub and a hub configuration tuned for quick retries.

#![allow(dead_code)] // each test binary uses a different part of it

pub mod hubserver;

use std::path::Path;
use std::time::Duration;

use minibar_hub::{Hub, HubConfig};

/// A config pointing at the loopback hub and a private cache, with short retry delays so fault
/// runs finish quickly; the stall timeout stays long enough that a busy machine is not taken
/// for a stalled link (these are settings, not assertions on time).
pub fn config(endpoint: &str, cache: &Path) -> HubConfig {
    HubConfig {
        endpoint: Some(endpoint.to_string()),
        token: None,
        cache_dir: Some(cache.to_path_buf()),
        offline: false,
        parallel_files: 3,
        max_attempts: 6,
        base_retry_delay: Duration::from_millis(5),
        max_retry_delay: Duration::from_millis(40),
        stall_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(5),
        max_verify_attempts: 3,
        filter: Default::default(),
    }
}

/// A hub for the loopback server with no implicit token from the environment.
pub fn hub(endpoint: &str, cache: &Path) -> Hub {
    Hub::new(config(endpoint, cache)).expect("hub")
}

/// The `minibar` binary: `$MINIBAR_BIN`, else `minibar` next to this test's target dir (build
/// it first with `cargo build -p minibar`; it links MLX); `None` when there is none.
pub fn minibar_bin() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("MINIBAR_BIN") {
        let p = std::path::PathBuf::from(p);
        assert!(p.is_file(), "MINIBAR_BIN={} does not exist", p.display());
        return Some(p);
    }
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/minibar
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("minibar");
    candidate.is_file().then_some(candidate)
}

/// Files under `dir` (recursively) whose name ends with `suffix`.
pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_with_suffix(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out
}

/// Mounts a tmpfs of `size` at `dir` (needs root); false if this machine does not allow it.
pub fn mount_tmpfs(dir: &Path, size: &str, remount: bool) -> bool {
    let mut cmd = std::process::Command::new("mount");
    cmd.args(["-t", "tmpfs", "-o"]);
    cmd.arg(if remount {
        format!("remount,size={size}")
    } else {
        format!("size={size}")
    });
    cmd.arg("tmpfs").arg(dir);
    cmd.stderr(std::process::Stdio::null());
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

/// Unmounts the folder when dropped.
pub struct Unmount(pub std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
