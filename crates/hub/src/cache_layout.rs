//! The Hugging Face hub cache layout, shared with huggingface_hub, mlx-lm and hf-hub:
//! `models--org--name/{blobs/<etag>, snapshots/<commit>/<path> -> ../../blobs/<etag>, refs/<rev>}`,
//! with `blobs/<etag>.incomplete` for a file being downloaded.
//!
//! ETags, commit ids and file paths come from the server, and every one of them becomes a path
//! here: they are checked by the `check_*` functions below before they get that far (a `../`
//! from a malicious mirror would otherwise write outside the cache).

use std::path::{Path, PathBuf};

use crate::error::{HubError, Result};
use crate::model_ref::is_commit_hash;

/// Suffix of a blob that is still being downloaded (huggingface_hub's convention).
pub const INCOMPLETE_SUFFIX: &str = ".incomplete";

/// Suffix of the empty marker beside a blob accepted on its size alone (the hub gave no hash
/// to check it against), so the library can say which files were never checked.
pub const UNVERIFIED_SUFFIX: &str = ".unverified";

/// Paths of one model repository in the hub cache.
#[derive(Clone, Debug)]
pub struct RepoCache {
    root: PathBuf,
    locks: PathBuf,
}

/// Folder name of a model repository in the cache: `models--org--name`.
pub fn repo_folder_name(repo_id: &str) -> String {
    format!("models--{}", repo_id.replace('/', "--"))
}

/// Repository id back from a cache folder name (`models--org--name` -> `org/name`).
pub fn repo_id_from_folder(folder: &str) -> Option<String> {
    let rest = folder.strip_prefix("models--")?;
    let (org, name) = rest.split_once("--")?;
    Some(format!("{org}/{name}"))
}

/// Whether an ETag can name a blob: a content hash in hex (MD5 to SHA-512, 32 to 128 digits).
/// The hub sends a SHA-256 for LFS files and a git SHA-1 for the others.
pub fn is_blob_name(etag: &str) -> bool {
    (32..=128).contains(&etag.len()) && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Refuses an ETag that is not a content hash, before it names a file.
pub(crate) fn check_etag(etag: &str, url: &str) -> Result<()> {
    if is_blob_name(etag) {
        return Ok(());
    }
    Err(HubError::UnsafeName {
        url: url.to_string(),
        what: "ETag",
        value: shorten(etag),
        expected: "a content hash (32 to 128 hex digits)",
    })
}

/// Refuses a commit id that is not 40 hex digits, before it names a snapshot folder.
pub(crate) fn check_commit(commit: &str, url: &str) -> Result<()> {
    if is_commit_hash(commit) {
        return Ok(());
    }
    Err(HubError::UnsafeName {
        url: url.to_string(),
        what: "commit id",
        value: shorten(commit),
        expected: "a git commit hash (40 hex digits)",
    })
}

/// Whether a repository file path stays inside the snapshot folder: relative, `/`-separated,
/// with no empty, `.` or `..` part, no backslash and no NUL.
pub fn is_safe_repo_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Refuses a repository file path that would leave the snapshot folder.
pub(crate) fn check_repo_path(path: &str, url: &str) -> Result<()> {
    if is_safe_repo_path(path) {
        return Ok(());
    }
    Err(HubError::UnsafeName {
        url: url.to_string(),
        what: "file path",
        value: shorten(path),
        expected: "a relative path without `..`, `.` or empty parts",
    })
}

/// A server-provided value cut to a length that fits in an error message.
fn shorten(value: &str) -> String {
    let cut: String = value.chars().take(80).collect();
    if cut.len() < value.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

/// Deletes one partial download (`<cache>/models--org--name/blobs/<etag>.incomplete`, as a
/// pull's `FileStarted` event names it) unless a download is writing it now (it holds the
/// blob's lock); returns whether it was deleted. Anything else is left alone.
pub fn discard_partial(partial: &Path) -> Result<bool> {
    let etag = partial
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(INCOMPLETE_SUFFIX))
        .filter(|e| is_blob_name(e));
    let blobs = partial.parent();
    let root = blobs.and_then(Path::parent);
    let (Some(etag), Some(blobs), Some(root)) = (etag, blobs, root) else {
        return Ok(false);
    };
    let (Some(folder), Some(cache_dir)) = (root.file_name(), root.parent()) else {
        return Ok(false);
    };
    if blobs.file_name().is_none_or(|b| b != "blobs") {
        return Ok(false);
    }
    let lock = cache_dir
        .join(".locks")
        .join(folder)
        .join(format!("{etag}.lock"));
    let held = match std::fs::OpenOptions::new().write(true).open(&lock) {
        Ok(f) => match fs4::fs_std::FileExt::try_lock_exclusive(&f) {
            Ok(true) => Some(f),
            Ok(false) => return Ok(false),
            Err(e) => return Err(HubError::io(&lock, e)),
        },
        // Never locked: no download writes it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(HubError::io(&lock, e)),
    };
    let removed = match std::fs::remove_file(partial) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(HubError::io(partial, e)),
    };
    drop(held);
    Ok(removed)
}

impl RepoCache {
    /// The cache paths of `repo_id` under the hub cache folder `cache_dir`.
    pub fn new(cache_dir: &Path, repo_id: &str) -> Self {
        let folder = repo_folder_name(repo_id);
        RepoCache {
            root: cache_dir.join(&folder),
            locks: cache_dir.join(".locks").join(folder),
        }
    }

    /// `models--org--name`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a verified blob lives.
    pub fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    /// Where a blob being downloaded lives.
    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(format!("{etag}{INCOMPLETE_SUFFIX}"))
    }

    /// The marker saying a blob was accepted on its size alone.
    pub fn unverified(&self, etag: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(format!("{etag}{UNVERIFIED_SUFFIX}"))
    }

    /// Lock file that keeps two processes from writing the same blob.
    pub fn lock(&self, etag: &str) -> PathBuf {
        self.locks.join(format!("{etag}.lock"))
    }

    /// The snapshot folder of a commit.
    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    /// The pointer of one file in a snapshot.
    pub fn snapshot_file(&self, commit: &str, path: &str) -> PathBuf {
        let mut p = self.snapshot(commit);
        for part in path.split('/') {
            p.push(part);
        }
        p
    }

    /// The commit a ref (branch or tag) was last seen at, if recorded.
    pub fn read_ref(&self, revision: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.root.join("refs").join(revision)).ok()?;
        let commit = text.trim();
        crate::model_ref::is_commit_hash(commit).then(|| commit.to_string())
    }

    /// Records that `revision` points at `commit` (atomically, so readers never see half a hash).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        let path = self.root.join("refs").join(revision);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| HubError::io(&dir, e))?;
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        std::fs::write(&tmp, commit).map_err(|e| HubError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| HubError::io(&path, e))
    }

    /// Points `snapshots/<commit>/<path>` at `blobs/<etag>` with a relative symlink, as
    /// huggingface_hub does, replacing whatever pointer was there.
    /// Names that are not a commit hash, a content hash and a path inside the snapshot are
    /// refused (the last line of defence; the network layer checks them first).
    pub fn link(&self, commit: &str, path: &str, etag: &str) -> Result<PathBuf> {
        let here = self.root.display().to_string();
        check_commit(commit, &here)?;
        check_repo_path(path, &here)?;
        check_etag(etag, &here)?;
        let pointer = self.snapshot_file(commit, path);
        let parent = pointer.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| HubError::io(&parent, e))?;
        let depth = path.split('/').count() + 1; // up from <commit>/<dirs...> to the repo root
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        match std::fs::symlink_metadata(&pointer) {
            Ok(_) => std::fs::remove_file(&pointer).map_err(|e| HubError::io(&pointer, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(HubError::io(&pointer, e)),
        }
        make_link(&target, &self.blob(etag), &pointer)?;
        Ok(pointer)
    }
}

#[cfg(unix)]
fn make_link(relative_target: &Path, _blob: &Path, pointer: &Path) -> Result<()> {
    std::os::unix::fs::symlink(relative_target, pointer).map_err(|e| HubError::io(pointer, e))
}

#[cfg(not(unix))]
fn make_link(_relative_target: &Path, blob: &Path, pointer: &Path) -> Result<()> {
    // Without symlinks huggingface_hub copies the blob; so do we.
    std::fs::copy(blob, pointer)
        .map(|_| ())
        .map_err(|e| HubError::io(pointer, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_round_trip() {
        assert_eq!(
            repo_folder_name("mlx-community/Qwen3-0.6B-4bit"),
            "models--mlx-community--Qwen3-0.6B-4bit"
        );
        assert_eq!(
            repo_id_from_folder("models--mlx-community--Qwen3-0.6B-4bit").as_deref(),
            Some("mlx-community/Qwen3-0.6B-4bit")
        );
        assert_eq!(repo_id_from_folder("datasets--a--b"), None);
    }

    #[test]
    fn links_nested_paths_relative_to_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(dir.path(), "org/name");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let etag = "ce013625030ba8dba906f756967f9e9ca394464a";
        std::fs::create_dir_all(cache.blob("x").parent().unwrap()).unwrap();
        std::fs::write(cache.blob(etag), b"hello").unwrap();
        let p = cache.link(commit, "sub/dir/file.json", etag).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        let p = cache.link(commit, "top.json", etag).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        cache.write_ref("main", commit).unwrap();
        assert_eq!(cache.read_ref("main").as_deref(), Some(commit));
    }

    #[test]
    fn names_from_the_server_are_checked_before_they_become_paths() {
        let sha1 = "ce013625030ba8dba906f756967f9e9ca394464a";
        let sha256 = "a".repeat(64);
        assert!(is_blob_name(sha1) && is_blob_name(&sha256));
        for bad in [
            "",
            "../../x",
            "abc",
            "..",
            "a/b",
            &"g".repeat(40),
            &"a".repeat(129),
        ] {
            assert!(!is_blob_name(bad), "{bad}");
            assert!(check_etag(bad, "u").is_err(), "{bad}");
        }
        assert!(check_commit(sha1, "u").is_ok());
        for bad in [
            "../../../escaped",
            "main",
            &"a".repeat(64),
            "0123456789abcdef0123456789abcdef0123456/",
        ] {
            let e = check_commit(bad, "http://hub/api").unwrap_err().to_string();
            assert!(
                e.contains("commit id") && e.contains("http://hub/api"),
                "{e}"
            );
        }
        for good in [
            "config.json",
            "sub/dir/model.safetensors",
            ".gitattributes",
            "a..b",
        ] {
            assert!(is_safe_repo_path(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\\..\\b",
            "a\0b",
        ] {
            assert!(!is_safe_repo_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn link_refuses_names_that_leave_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(&dir.path().join("hub"), "org/name");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let etag = "ce013625030ba8dba906f756967f9e9ca394464a";
        assert!(cache.link("../../../out", "f.json", etag).is_err());
        assert!(cache.link(commit, "../../../../out", etag).is_err());
        assert!(cache.link(commit, "f.json", "../../../../out").is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing was created"
        );
    }

    #[test]
    fn a_partial_is_discarded_only_when_no_download_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(dir.path(), "org/model");
        std::fs::create_dir_all(cache.root().join("blobs")).unwrap();
        std::fs::create_dir_all(&cache.locks).unwrap();
        let (mine, theirs) = ("a".repeat(64), "b".repeat(64));
        for etag in [&mine, &theirs] {
            std::fs::write(cache.incomplete(etag), b"half").unwrap();
        }
        // Another download is writing `theirs`: it holds the blob's lock.
        let lock = std::fs::File::create(cache.lock(&theirs)).unwrap();
        assert!(fs4::fs_std::FileExt::try_lock_exclusive(&lock).unwrap());

        assert!(discard_partial(&cache.incomplete(&mine)).unwrap());
        assert!(!cache.incomplete(&mine).exists());
        assert!(!discard_partial(&cache.incomplete(&theirs)).unwrap());
        assert!(
            cache.incomplete(&theirs).exists(),
            "a running download's file was deleted"
        );
        // Not a partial download: left alone.
        let blob = cache.blob(&mine);
        std::fs::write(&blob, b"whole").unwrap();
        assert!(!discard_partial(&blob).unwrap());
        assert!(blob.exists());
    }
}
