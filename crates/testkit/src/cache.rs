//! Fixtures and reference outputs computed once and kept between runs, keyed by content.
//!
//! Invariant: a cached entry is found only under the hash of everything that produced it, and
//! appears only whole (built in a temporary sibling, then renamed), so neither an edited input
//! nor an interrupted or concurrent run can be answered with a stale or half-written entry.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::env::{repo_root, script};

/// A content hash for cache keys.
#[derive(Default)]
pub struct Key(Sha256);

impl Key {
    /// A key that starts with a reference script and the pinned versions (scripts/versions.env).
    pub fn for_script(script_name: &str) -> Self {
        let mut key = Key::default();
        key.file(&script(script_name));
        key.file(&repo_root().join("scripts/versions.env"));
        key
    }

    /// Adds bytes, length-prefixed so that consecutive parts cannot run into each other.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds a file's contents.
    pub fn file(&mut self, path: &Path) -> &mut Self {
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| panic!("cannot read {} for a cache key: {e}", path.display()));
        self.bytes(&bytes)
    }

    /// Adds every file under `dir`: relative names and contents, in sorted order. Minibar's
    /// own notes beside a model (`.minibar-*`, such as the cluster's hash cache, written by
    /// any test that starts a rank on the folder) are not the model and are left out.
    pub fn dir(&mut self, dir: &Path) -> &mut Self {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let ours = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".minibar-"));
                if ours {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files.sort();
        for f in files {
            self.bytes(f.strip_prefix(dir).unwrap().to_string_lossy().as_bytes());
            self.file(&f);
        }
        self
    }

    /// The first 16 hex digits of the hash.
    pub fn short(&self) -> String {
        self.0.clone().finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A fixture folder built once by `build` and reused afterwards (under `MINIBAR_TEST_FIXTURES`,
/// or a temporary folder when that is not set).
pub fn fixture(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let root = std::env::var_os("MINIBAR_TEST_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("minibar-fixtures"));
    let dest = root.join(name);
    if dest.exists() {
        return dest;
    }
    let parent = dest.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    let tmp = parent.join(format!(
        ".{}.{}-{:?}",
        dest.file_name().unwrap().to_string_lossy(),
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    build(&tmp);
    if std::fs::rename(&tmp, &dest).is_err() {
        // Another test built it first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dest
}

/// A fixture built by the reference script `script_name` (through `build`), under a name that
/// carries a hash of the script and the pinned versions: editing either builds it again.
pub fn script_fixture(name: &str, script_name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    fixture(
        &format!("{name}-{}", Key::for_script(script_name).short()),
        build,
    )
}

/// The text `compute` returns, computed once per `key` and read back afterwards.
pub fn cached(key: &Key, compute: impl FnOnce() -> String) -> String {
    let dir = fixture(&format!("reference-outputs/{}", key.short()), |dir| {
        let text = compute();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("output"), text).unwrap();
    });
    std::fs::read_to_string(dir.join("output")).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_when_any_part_or_its_boundary_differs() {
        let k = |parts: &[&[u8]]| {
            let mut key = Key::default();
            for p in parts {
                key.bytes(p);
            }
            key.short()
        };
        assert_eq!(k(&[b"ab", b"c"]), k(&[b"ab", b"c"]));
        assert_ne!(k(&[b"ab", b"c"]), k(&[b"a", b"bc"]));
        assert_ne!(k(&[b"ab"]), k(&[b"ac"]));
    }

    #[test]
    fn a_folder_key_follows_names_and_contents() {
        let tmp = tempdir();
        std::fs::write(tmp.join("a"), b"1").unwrap();
        let before = Key::default().dir(&tmp).short();
        std::fs::write(tmp.join("a"), b"2").unwrap();
        let edited = Key::default().dir(&tmp).short();
        std::fs::rename(tmp.join("a"), tmp.join("b")).unwrap();
        let renamed = Key::default().dir(&tmp).short();
        assert_ne!(before, edited);
        assert_ne!(edited, renamed);
        // A rank's hash cache beside the files is not part of them.
        std::fs::write(tmp.join(".minibar-hashes.json"), b"{}").unwrap();
        assert_eq!(Key::default().dir(&tmp).short(), renamed);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn cached_computes_once_per_key() {
        let root = tempdir();
        std::env::set_var("MINIBAR_TEST_FIXTURES", &root);
        let mut key = Key::default();
        key.bytes(b"cached_computes_once_per_key");
        assert_eq!(cached(&key, || "first".into()), "first");
        assert_eq!(cached(&key, || panic!("computed twice")), "first");
        key.bytes(b"another input");
        assert_eq!(cached(&key, || "second".into()), "second");
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "minibar-testkit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
