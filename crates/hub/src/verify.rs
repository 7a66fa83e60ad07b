//! What a downloaded file must match before it is marked complete, and the running hash
//! that checks it.

use serde::Serialize;
use sha1::Digest as _;

/// The check a file must pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Check {
    /// LFS file: the SHA-256 of the content (the hub's `X-Linked-Etag`).
    Sha256(String),
    /// Plain git file: the git blob SHA-1 of the content (the hub's `ETag`).
    GitSha1(String),
    /// Only the size is known.
    Size,
}

impl Check {
    /// The check implied by an ETag: 64 hex digits are a SHA-256, 40 a git SHA-1.
    pub fn from_etag(etag: &str, is_lfs: bool) -> Check {
        let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
        match etag.len() {
            64 if hex => Check::Sha256(etag.to_ascii_lowercase()),
            40 if hex && !is_lfs => Check::GitSha1(etag.to_ascii_lowercase()),
            _ => Check::Size,
        }
    }
}

/// A hash fed as bytes arrive, so the check costs no second read of the file.
pub(crate) enum RunningHash {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
    None,
}

impl RunningHash {
    /// A fresh hash for a file of `size` bytes under `check`.
    pub(crate) fn new(check: &Check, size: u64) -> Self {
        match check {
            Check::Sha256(_) => RunningHash::Sha256(sha2::Sha256::new()),
            Check::GitSha1(_) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                RunningHash::GitSha1(h)
            }
            Check::Size => RunningHash::None,
        }
    }

    /// Adds bytes in file order.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            RunningHash::Sha256(h) => sha2::Digest::update(h, bytes),
            RunningHash::GitSha1(h) => h.update(bytes),
            RunningHash::None => {}
        }
    }

    /// Compares with the expected value; `Err` carries a description of the mismatch.
    pub(crate) fn finish(self, check: &Check, size: u64, expected_size: u64) -> Result<(), String> {
        if size != expected_size {
            return Err(format!("size {size} instead of {expected_size}"));
        }
        let (got, want) = match (self, check) {
            (RunningHash::Sha256(h), Check::Sha256(want)) => {
                (hex::encode(sha2::Digest::finalize(h)), want)
            }
            (RunningHash::GitSha1(h), Check::GitSha1(want)) => (hex::encode(h.finalize()), want),
            _ => return Ok(()),
        };
        if &got == want {
            Ok(())
        } else {
            Err(format!("content hash {got} instead of {want}"))
        }
    }
}

/// The git blob SHA-1 of some bytes (what the hub sends as the ETag of a plain file).
pub fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

/// The SHA-256 of some bytes, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
        sha2::Sha256::new(),
        bytes,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_sha1_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn running_hash_detects_mismatch() {
        let data = b"some model bytes";
        let check = Check::Sha256(sha256_hex(data));
        let mut h = RunningHash::new(&check, data.len() as u64);
        h.update(&data[..4]);
        h.update(&data[4..]);
        assert!(h
            .finish(&check, data.len() as u64, data.len() as u64)
            .is_ok());
        let mut h = RunningHash::new(&check, data.len() as u64);
        h.update(b"some model bytez");
        assert!(h
            .finish(&check, data.len() as u64, data.len() as u64)
            .is_err());
        let check = Check::GitSha1(git_blob_sha1(data));
        let mut h = RunningHash::new(&check, data.len() as u64);
        h.update(data);
        assert!(h
            .finish(&check, data.len() as u64, data.len() as u64)
            .is_ok());
    }

    #[test]
    fn etag_kinds() {
        assert!(matches!(
            Check::from_etag(&"a".repeat(64), true),
            Check::Sha256(_)
        ));
        assert!(matches!(
            Check::from_etag(&"a".repeat(40), false),
            Check::GitSha1(_)
        ));
        assert_eq!(Check::from_etag("xyz", false), Check::Size);
    }
}
