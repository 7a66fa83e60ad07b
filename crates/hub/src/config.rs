//! Where the hub is, who we are to it, and how hard to try: resolved once from the environment.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{HubError, Result};
use crate::filter::FileFilter;

/// Default Hugging Face endpoint when neither the config nor `HF_ENDPOINT` names one.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// What `Debug` prints in place of a token.
pub(crate) const REDACTED: &str = "<redacted>";

/// How a pull talks to the hub and retries; every field has a sensible default.
/// `Debug` says whether a token is set, never the token.
#[derive(Clone)]
pub struct HubConfig {
    /// Hub base URL; `None` means `HF_ENDPOINT`, else <https://huggingface.co>.
    pub endpoint: Option<String>,
    /// Access token; `None` means `HF_TOKEN`, `HF_TOKEN_PATH`, then `$HF_HOME/token`
    /// (the app passes the token it keeps in the OS keychain here).
    pub token: Option<String>,
    /// Hub cache folder; `None` means `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`: the folder mlx-lm and huggingface-cli share.
    pub cache_dir: Option<PathBuf>,
    /// Never touch the network; use the cache only (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Files downloaded at the same time.
    pub parallel_files: usize,
    /// Failed attempts in a row (without new bytes) before a file is given up.
    pub max_attempts: u32,
    /// First retry delay; doubles after each failure up to `max_retry_delay`.
    pub base_retry_delay: Duration,
    /// Longest wait between two attempts.
    pub max_retry_delay: Duration,
    /// No new bytes for this long means the connection stalled: drop it and retry.
    pub stall_timeout: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Downloads of one file that may fail verification before the pull gives up.
    pub max_verify_attempts: u32,
    /// Which files of the repository to fetch.
    pub filter: FileFilter,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            endpoint: None,
            token: None,
            cache_dir: None,
            offline: false,
            parallel_files: 4,
            max_attempts: 8,
            base_retry_delay: Duration::from_millis(500),
            max_retry_delay: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            max_verify_attempts: 3,
            filter: FileFilter::default(),
        }
    }
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so a new field cannot be left out of Debug by accident.
        let HubConfig {
            endpoint,
            token,
            cache_dir,
            offline,
            parallel_files,
            max_attempts,
            base_retry_delay,
            max_retry_delay,
            stall_timeout,
            connect_timeout,
            max_verify_attempts,
            filter,
        } = self;
        f.debug_struct("HubConfig")
            .field("endpoint", endpoint)
            .field("token", &token.as_ref().map(|_| REDACTED))
            .field("cache_dir", cache_dir)
            .field("offline", offline)
            .field("parallel_files", parallel_files)
            .field("max_attempts", max_attempts)
            .field("base_retry_delay", base_retry_delay)
            .field("max_retry_delay", max_retry_delay)
            .field("stall_timeout", stall_timeout)
            .field("connect_timeout", connect_timeout)
            .field("max_verify_attempts", max_verify_attempts)
            .field("filter", filter)
            .finish()
    }
}

impl HubConfig {
    /// Defaults plus `HF_HUB_OFFLINE`; endpoint, token and cache are resolved when the
    /// [`Hub`](crate::Hub) is built, so explicit values set afterwards win over the environment.
    pub fn from_env() -> Self {
        HubConfig {
            offline: env_flag("HF_HUB_OFFLINE"),
            ..HubConfig::default()
        }
    }

    /// Sets the token to send (for example one read from the OS keychain).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Sets the hub base URL (a mirror, or a local test server).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the hub cache folder.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }
}

/// The endpoint to use: explicit, else `HF_ENDPOINT`, else the public hub; checked by
/// [`validate_endpoint`].
pub(crate) fn resolve_endpoint(explicit: Option<&str>) -> Result<String> {
    let chosen = explicit
        .map(str::to_string)
        .or_else(|| {
            std::env::var("HF_ENDPOINT")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    validate_endpoint(&chosen)
}

/// Checks a hub endpoint the token will be sent to and returns it without a trailing slash:
/// https, or plain http only on this machine (loopback), with no user name, password, query or
/// fragment. The one place the app's settings, the CLI and [`Hub`](crate::Hub) decide this.
pub fn validate_endpoint(endpoint: &str) -> Result<String> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let refuse = |reason: &str| HubError::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let url = reqwest::Url::parse(trimmed).map_err(|e| refuse(&format!("not a URL ({e})")))?;
    let Some(host) = url.host() else {
        return Err(refuse("it names no host"));
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(refuse(
                "plain http would send the access token unencrypted to another machine",
            ))
        }
        other => return Err(refuse(&format!("`{other}` is not http or https"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("it contains a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("it has a query or fragment"));
    }
    Ok(trimmed.to_string())
}

/// Whether a host is this machine: a loopback address or `localhost`.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    }
}

/// The token to send: `HF_TOKEN`, the one the app saved in the OS keychain, then
/// huggingface_hub's `HF_TOKEN_PATH` and the file `huggingface-cli login` writes; none if
/// `HF_HUB_DISABLE_IMPLICIT_TOKEN` is set. A keychain that cannot be reached counts as empty.
pub fn resolve_token(explicit: Option<&str>) -> Option<String> {
    if let Some(token) = explicit.map(str::trim).filter(|t| !t.is_empty()) {
        return Some(token.to_string());
    }
    if env_flag("HF_HUB_DISABLE_IMPLICIT_TOKEN") {
        return None;
    }
    if let Some(token) = std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Some(token.trim().to_string());
    }
    if let Ok(Some(token)) = crate::keychain::token() {
        if !token.trim().is_empty() {
            return Some(token.trim().to_string());
        }
    }
    let from_file = |path: PathBuf| {
        std::fs::read_to_string(path)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    if let Some(path) = std::env::var_os("HF_TOKEN_PATH") {
        if let Some(token) = from_file(PathBuf::from(path)) {
            return Some(token);
        }
    }
    from_file(hf_home().join("token"))
}

/// `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub fn hf_home() -> PathBuf {
    if let Some(home) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("huggingface");
    }
    home_dir().join(".cache").join("huggingface")
}

/// The hub cache folder: `HF_HUB_CACHE` (or the older `HUGGINGFACE_HUB_CACHE`), else `hf_home()/hub`.
pub fn hub_cache_dir() -> PathBuf {
    for var in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"] {
        if let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return PathBuf::from(dir);
        }
    }
    hf_home().join("hub")
}

/// The user's home folder (`HOME`), or `/tmp` when it is unset.
pub(crate) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_a_token_may_go_to() {
        for (given, want) in [
            ("https://huggingface.co", "https://huggingface.co"),
            ("https://hf-mirror.com/", "https://hf-mirror.com"),
            ("https://mirror.example/hub", "https://mirror.example/hub"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.5.0.1", "http://127.5.0.1"),
            ("http://[::1]:9000/", "http://[::1]:9000"),
            ("http://localhost:3000", "http://localhost:3000"),
        ] {
            assert_eq!(validate_endpoint(given).unwrap(), want);
        }
        for (given, needle) in [
            ("http://hf-mirror.com", "unencrypted"),
            ("http://192.168.1.10:8080", "unencrypted"),
            ("http://localhost.evil.example", "unencrypted"),
            ("ftp://huggingface.co", "`ftp`"),
            ("file:///etc", "no host"),
            ("huggingface.co", "not a URL"),
            ("https://user:pw@huggingface.co", "password"),
            ("https://huggingface.co/?x=1", "query"),
            ("", "not a URL"),
        ] {
            let e = validate_endpoint(given).unwrap_err().to_string();
            assert!(e.contains(needle), "{given}: {e}");
            assert!(e.contains("https://"), "{e}");
        }
    }

    #[test]
    fn debug_never_prints_the_token() {
        let config = HubConfig::default()
            .with_token(Some("hf_SECRETsecret".into()))
            .with_endpoint("https://huggingface.co");
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains(REDACTED), "{shown}");
        let hub = crate::Hub::new(config.with_cache_dir(std::env::temp_dir())).unwrap();
        let shown = format!("{hub:?} {hub:#?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("huggingface.co"), "{shown}");
    }
}
