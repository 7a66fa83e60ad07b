//! The API key a server off loopback requires: generated on first use, then kept. Its home
//! is the OS keychain (macOS Keychain; the Secret Service on Linux), through minibar-hub's
//! keychain module, the same service as the Hugging Face token. Where no keychain can be
//! used (a headless Linux session without a Secret Service), it is kept in a file under
//! Minibar's config folder that only its owner may read (0600), and the caller is told
//! which: a key is never written anywhere else, and a key file others can read is refused.

use std::path::{Path, PathBuf};

/// Where the key is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHome {
    /// The OS keychain.
    Keychain,
    /// This file (mode 0600), because the keychain could not be used (why).
    File(PathBuf, String),
}

impl std::fmt::Display for KeyHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keychain => write!(f, "the OS keychain"),
            Self::File(path, why) => write!(
                f,
                "{} (readable by you only; the OS keychain is not available: {why})",
                path.display()
            ),
        }
    }
}

/// The server's key and where it is kept.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The key clients send as `Authorization: Bearer <key>`.
    pub key: String,
    /// Where it is kept.
    pub home: KeyHome,
    /// Whether it was generated just now.
    pub created: bool,
}

/// Why the key could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither the keychain nor the config folder could be used.
    #[error("cannot keep the API key in {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file can be read by others.
    #[error("{0} can be read by other users; run `chmod 600 {0}` or delete it for a new key")]
    Exposed(PathBuf),
    /// No config folder (no HOME).
    #[error("no config folder to keep the API key in (HOME is not set)")]
    NoConfigDir,
}

/// The key file used where the keychain is not: `<config dir>/server-api-key`.
pub fn key_file() -> Option<PathBuf> {
    minibar_catalog::config_dir().map(|d| d.join("server-api-key"))
}

/// The kept key, or a new one kept from now on: in the keychain when it can be used, else
/// in [`key_file`].
pub fn load_or_create() -> Result<ApiKey, KeyError> {
    use minibar_hub::keychain::{secret, set_secret, SERVER_KEY_ACCOUNT};
    let why = match secret(SERVER_KEY_ACCOUNT) {
        Ok(Some(key)) if !key.trim().is_empty() => {
            return Ok(ApiKey {
                key: key.trim().to_owned(),
                home: KeyHome::Keychain,
                created: false,
            })
        }
        Ok(_) => {
            let key = generate();
            // Read back: a keychain that accepts and forgets would lose the key silently.
            match set_secret(SERVER_KEY_ACCOUNT, &key).and_then(|()| secret(SERVER_KEY_ACCOUNT)) {
                Ok(Some(kept)) if kept == key => {
                    return Ok(ApiKey {
                        key,
                        home: KeyHome::Keychain,
                        created: true,
                    })
                }
                Ok(_) => "it did not keep the key".to_owned(),
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    let path = key_file().ok_or(KeyError::NoConfigDir)?;
    load_or_create_file(&path, &why)
}

/// The key in `path`, or a new one written there readable by its owner only.
pub fn load_or_create_file(path: &Path, why: &str) -> Result<ApiKey, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let home = KeyHome::File(path.to_owned(), why.to_owned());
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            check_private(path)?;
            return Ok(ApiKey {
                key: text.trim().to_owned(),
                home,
                created: false,
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let key = generate();
    write_private(path, &key).map_err(io)?;
    Ok(ApiKey {
        key,
        home,
        created: true,
    })
}

/// 32 random bytes from the OS's generator, as hex after a recognisable prefix.
fn generate() -> String {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator works");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("minibar-{hex}")
}

#[cfg(unix)]
fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Created 0600 from the start: never readable by others, not even for a moment.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(key.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
    std::fs::write(path, key)
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed(path.to_owned()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_key_is_generated_once_private_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("minibar/server-api-key");
        let first = load_or_create_file(&path, "no Secret Service").unwrap();
        assert!(first.created);
        assert!(first.key.starts_with("minibar-") && first.key.len() == 8 + 64);
        assert!(first.home.to_string().contains("readable by you only"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = load_or_create_file(&path, "no Secret Service").unwrap();
        assert!(!again.created);
        assert_eq!(again.key, first.key);
        let other = load_or_create_file(&dir.path().join("other"), "").unwrap();
        assert_ne!(other.key, first.key, "keys are random");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server-api-key");
        std::fs::write(&path, "minibar-abc").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_file(&path, "").unwrap_err();
        assert!(matches!(err, KeyError::Exposed(_)), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
