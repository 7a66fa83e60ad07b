//! Where the user's own catalog and settings live.

use std::path::PathBuf;

/// `$MINIBAR_CATALOG` when set; else `$XDG_CONFIG_HOME/minibar/models.toml`; else
/// `~/.config/minibar/models.toml`.
pub fn user_catalog_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MINIBAR_CATALOG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    Some(config_dir()?.join("models.toml"))
}

/// Minibar's own settings folder: `$XDG_CONFIG_HOME/minibar`, else `~/.config/minibar`.
pub fn config_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("minibar"))
}
