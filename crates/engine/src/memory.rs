//! MLX's allocator limits, set from minibar-fit's admission before every load, so that no
//! model (forced ones included) can make MLX take more than the budget it was judged by.
//!
//! The limits are process-wide in MLX: the last model loaded sets them, which is right for
//! the app, the CLI and the server, each of which holds one model at a time.

use minibar_fit::MemoryLimits;

use crate::error::Result;

/// Sets MLX's memory and cache limits (and, on macOS, the wired limit) to `limits`.
pub fn apply(limits: &MemoryLimits) -> Result<()> {
    mlx_rs::memory::set_memory_limit(to_usize(limits.memory))?;
    mlx_rs::memory::set_cache_limit(to_usize(limits.cache))?;
    #[cfg(target_os = "macos")]
    if let Some(wired) = limits.wired {
        // Only macOS 15 and later can wire memory; older systems keep MLX's default.
        if let Err(e) = mlx_rs::memory::set_wired_limit(to_usize(wired)) {
            eprintln!("minibar: MLX's wired limit is not set: {}", e.what());
        }
    }
    Ok(())
}

/// MLX's current memory limit in bytes.
pub fn memory_limit() -> Result<u64> {
    Ok(mlx_rs::memory::memory_limit()? as u64)
}

fn to_usize(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}
