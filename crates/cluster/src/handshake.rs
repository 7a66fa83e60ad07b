//! What the ranks agree on before any token: the same Minibar and cluster protocol, the same
//! model (shape and weights), and each node's memory, from which every rank derives the same
//! layer split. Each rank puts its announcement in its own row of a zero matrix and one
//! `all_sum` gives every rank every row.
//!
//! The weights' fingerprint is the SHA-256 of every model file's whole content (with its name
//! and size), so two models that differ in any byte never agree. Hashing tens of GB takes a
//! while, so each file's hash is kept next to it ([`HASH_CACHE_FILE`]) under its size and
//! modification time, and a second start reads it instead of the file. SHA-256, not another
//! hash: it is what the hub gives for each large file, so a node that pulled only its own
//! layers (`minibar pull --layers`, [`minibar_fit::LayersHeld`]) still names the shards it
//! lacks by their content, and agrees with a node that holds the whole model.
//!
//! Invariant: a cached hash is used only for a file of the same size and modification time,
//! and only if the file was already older than the hash when it was taken (a file changed in
//! the same clock tick as its hashing is hashed again next time, as git does).

use std::{
    collections::BTreeMap,
    fs::File,
    io::Read,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use mlx_rs::Array;
use sha2::{Digest, Sha256};

use crate::{
    dist::Group,
    error::{ClusterError, Result},
    hostfile::Hostfile,
};

/// Bumped whenever the messages ranks exchange change (2: `QUIT`, for a cluster that stays up).
pub const PROTOCOL: u32 = 2;

/// The file beside a model's files that keeps their content hashes.
pub const HASH_CACHE_FILE: &str = ".minibar-hashes.json";

/// How long a file must have been unmodified when it was hashed for the hash to be kept.
const SETTLED_NS: u128 = 2_000_000_000;

const WORDS: usize = 12;

/// One rank's announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// The cluster protocol.
    pub protocol: u32,
    /// A hash of Minibar's version.
    pub build: u64,
    /// A hash of the model's hyperparameters.
    pub shape: u64,
    /// Bytes of model files.
    pub bytes: u64,
    /// The content hash of the model files (see [`weights_fingerprint`]).
    pub weights: u64,
    /// Bytes this node may use for the model (minibar-fit's budget).
    pub budget: u64,
    /// The port of this rank's doorbell (see `doorbell`).
    pub doorbell: u16,
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(b)
}

/// A hash of Minibar's version and the cluster protocol.
pub fn build_hash() -> u64 {
    first_u64(&Sha256::digest(env!("CARGO_PKG_VERSION").as_bytes()))
}

/// A hash of the model's hyperparameters as the engine parsed them.
pub fn shape_hash(args: &minibar_engine::config::ModelArgs) -> u64 {
    let json = serde_json::to_string(args).unwrap_or_default();
    first_u64(&Sha256::digest(json.as_bytes()))
}

/// The content fingerprint and total size of a model file, or of a model folder's files
/// (those a partial folder lacks counted by the hashes its [`minibar_fit::LayersHeld`] gives).
pub fn weights_fingerprint(path: &Path) -> Result<(u64, u64)> {
    let io = |e: std::io::Error| ClusterError::Io {
        what: format!("reading {} for its fingerprint", path.display()),
        source: e,
    };
    let (dir, files) = if path.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io)? {
            let p = entry.map_err(io)?.path();
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            // Minibar's own notes about the folder are not the model.
            if p.is_file() && !name.is_some_and(|n| n.starts_with(".minibar-")) {
                files.push(p);
            }
        }
        (path.to_owned(), files)
    } else {
        let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        (dir, vec![path.to_owned()])
    };
    let mut cache = HashCache::read(&dir);
    // Name -> (size, SHA-256 hex): the same for a whole folder and a partial one.
    let mut entries: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let entry = cache.hash(f, &name).map_err(io)?;
        entries.insert(name, entry);
    }
    if path.is_dir() {
        if let Some(held) = minibar_fit::LayersHeld::read(path) {
            for absent in held.missing {
                let hash = absent.sha256.unwrap_or_else(|| "unknown".into());
                entries.entry(absent.path).or_insert((absent.size, hash));
            }
        }
    }
    cache.write(&dir);
    let mut h = Sha256::new();
    let mut total = 0;
    for (name, (size, hash)) in &entries {
        if path.is_dir() {
            h.update(name.as_bytes());
        }
        h.update(size.to_le_bytes());
        h.update(hash.as_bytes());
        total += size;
    }
    Ok((first_u64(&h.finalize()), total))
}

/// One file's cached hash.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CachedHash {
    size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    mtime_ns: u128,
    /// When the hash was taken, same unit.
    hashed_ns: u128,
    sha256: String,
}

/// The hashes kept beside a folder's files, by file name.
struct HashCache {
    dir: std::path::PathBuf,
    files: BTreeMap<String, CachedHash>,
    changed: bool,
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

impl HashCache {
    fn read(dir: &Path) -> HashCache {
        let files = std::fs::read(dir.join(HASH_CACHE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HashCache {
            dir: dir.to_owned(),
            files,
            changed: false,
        }
    }

    /// The size and SHA-256 of `file`, from the cache when it still describes the file.
    fn hash(&mut self, file: &Path, name: &str) -> std::io::Result<(u64, String)> {
        let meta = std::fs::metadata(file)?;
        let (size, mtime_ns) = (meta.len(), nanos(meta.modified()?));
        if let Some(c) = self.files.get(name) {
            let settled = c.hashed_ns >= c.mtime_ns + SETTLED_NS;
            if c.size == size && c.mtime_ns == mtime_ns && settled {
                return Ok((size, c.sha256.clone()));
            }
        }
        let hashed_ns = nanos(SystemTime::now());
        let sha256 = sha256_file(file)?;
        self.files.insert(
            name.to_owned(),
            CachedHash {
                size,
                mtime_ns,
                hashed_ns,
                sha256: sha256.clone(),
            },
        );
        self.changed = true;
        Ok((size, sha256))
    }

    /// Keeps the hashes for the next start; a folder that cannot be written is hashed again
    /// next time, which is slower, not wrong. Written whole and renamed, so ranks sharing a
    /// folder never read half a file.
    fn write(&self, dir: &Path) {
        if !self.changed || dir != self.dir {
            return;
        }
        let Ok(json) = serde_json::to_vec_pretty(&self.files) else {
            return;
        };
        let tmp = dir.join(format!("{HASH_CACHE_FILE}.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, json).is_ok()
            && std::fs::rename(&tmp, dir.join(HASH_CACHE_FILE)).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Announce {
    fn words(&self) -> [u32; WORDS] {
        let split = |v: u64| [v as u32, (v >> 32) as u32];
        let [b0, b1] = split(self.build);
        let [s0, s1] = split(self.shape);
        let [l0, l1] = split(self.bytes);
        let [w0, w1] = split(self.weights);
        let [m0, m1] = split(self.budget);
        [
            self.protocol,
            b0,
            b1,
            s0,
            s1,
            l0,
            l1,
            w0,
            w1,
            m0,
            m1,
            self.doorbell as u32,
        ]
    }

    fn from_words(w: &[u32]) -> Announce {
        let join = |lo: u32, hi: u32| lo as u64 | (hi as u64) << 32;
        Announce {
            protocol: w[0],
            build: join(w[1], w[2]),
            shape: join(w[3], w[4]),
            bytes: join(w[5], w[6]),
            weights: join(w[7], w[8]),
            budget: join(w[9], w[10]),
            doorbell: w[11] as u16,
        }
    }

    /// Why `other` (rank `rank`) cannot work with this (rank 0's) announcement, if it can't.
    pub fn mismatch(&self, other: &Announce) -> Option<String> {
        if other.protocol != self.protocol || other.build != self.build {
            return Some(format!(
                "it runs another Minibar build or cluster protocol ({} against rank 0's {}): install the same Minibar on every node",
                other.protocol, self.protocol
            ));
        }
        if other.shape != self.shape {
            return Some(
                "its model has different hyperparameters from rank 0's: every node must hold the same model"
                    .into(),
            );
        }
        if other.bytes != self.bytes || other.weights != self.weights {
            return Some(format!(
                "its model files differ from rank 0's ({} bytes, fingerprint {:016x}, against {} bytes, fingerprint {:016x}): copy the same model file to every node",
                other.bytes, other.weights, self.bytes, self.weights
            ));
        }
        None
    }
}

/// Exchanges announcements over `group` and returns every rank's, rank 0 first, or the
/// first rank that does not match rank 0.
pub fn exchange(group: &Group, mine: &Announce, hosts: &Hostfile) -> Result<Vec<Announce>> {
    let (rank, size) = (group.rank(), group.size());
    let mut rows = vec![0u32; size * WORDS];
    rows[rank * WORDS..(rank + 1) * WORDS].copy_from_slice(&mine.words());
    let all = group.all_sum(&Array::from_slice(&rows, &[(size * WORDS) as i32]))?;
    all.eval()?;
    let words: &[u32] = all.as_slice();
    let announced: Vec<Announce> = words.chunks(WORDS).map(Announce::from_words).collect();
    for (r, a) in announced.iter().enumerate().skip(1) {
        if let Some(reason) = announced[0].mismatch(a) {
            return Err(ClusterError::Mismatch {
                rank: r,
                node: hosts
                    .nodes
                    .get(r)
                    .and_then(|n| n.first())
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                reason,
            });
        }
    }
    Ok(announced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Announce {
        Announce {
            protocol: PROTOCOL,
            build: build_hash(),
            shape: 0x1234_5678_9abc_def0,
            bytes: 98_362_432,
            weights: u64::MAX - 7,
            budget: 17 << 30,
            doorbell: 54321,
        }
    }

    #[test]
    fn announcements_survive_the_word_encoding() {
        let a = sample();
        assert_eq!(Announce::from_words(&a.words()), a);
    }

    #[test]
    fn each_difference_is_named() {
        let a = sample();
        assert_eq!(a.mismatch(&Announce { budget: 1, ..a }), None);
        let e = a.mismatch(&Announce { weights: 3, ..a }).unwrap();
        assert!(e.contains("model files differ"), "{e}");
        let e = a.mismatch(&Announce { shape: 3, ..a }).unwrap();
        assert!(e.contains("hyperparameters"), "{e}");
        let e = a.mismatch(&Announce { build: 3, ..a }).unwrap();
        assert!(e.contains("Minibar build"), "{e}");
    }

    /// Sets `path`'s modification time `secs_ago` seconds back.
    fn age(path: &Path, secs_ago: u64) {
        let f = File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - std::time::Duration::from_secs(secs_ago))
            .unwrap();
    }

    #[test]
    fn a_byte_between_the_old_samples_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        // 8 MiB: the old fingerprint read 64 KiB at 64 places 128 KiB apart, so a byte at
        // 100 KiB was never read.
        let mut bytes: Vec<u8> = (0..8usize << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let (a, len) = weights_fingerprint(&p).unwrap();
        assert_eq!(len, bytes.len() as u64);
        bytes[100 << 10] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let (b, _) = weights_fingerprint(&p).unwrap();
        assert_ne!(a, b);
        let rank0 = Announce {
            weights: a,
            ..sample()
        };
        let e = rank0
            .mismatch(&Announce {
                weights: b,
                ..rank0
            })
            .unwrap();
        assert!(e.contains("model files differ"), "{e}");
    }

    #[test]
    fn hashes_are_kept_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        std::fs::write(&p, vec![7u8; 1 << 16]).unwrap();
        age(&p, 3600);
        let (first, _) = weights_fingerprint(dir.path()).unwrap();
        let cache = dir.path().join(HASH_CACHE_FILE);
        assert!(cache.is_file());
        // The cache file is not part of the model: the fingerprint stays.
        assert_eq!(weights_fingerprint(dir.path()).unwrap().0, first);

        // Same size, same time: the kept hash is used, the file is not read again (so
        // content changed behind an unchanged time goes unseen, as with any such cache).
        let t = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::fs::write(&p, vec![8u8; 1 << 16]).unwrap();
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert_eq!(weights_fingerprint(dir.path()).unwrap().0, first);
        // A changed time invalidates it: the new content is hashed.
        age(&p, 1800);
        assert_ne!(weights_fingerprint(dir.path()).unwrap().0, first);
    }

    #[test]
    fn a_partial_folder_fingerprints_as_the_whole_model() {
        let dir = tempfile::tempdir().unwrap();
        let (whole, part) = (dir.path().join("whole"), dir.path().join("part"));
        for d in [&whole, &part] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("config.json"), b"{}").unwrap();
            std::fs::write(d.join("model-00002-of-00002.safetensors"), b"second").unwrap();
        }
        std::fs::write(whole.join("model-00001-of-00002.safetensors"), b"first").unwrap();
        let held = |sha256: &str| minibar_fit::LayersHeld {
            layers: vec![[1, 2]],
            of: 2,
            missing: vec![minibar_fit::AbsentFile {
                path: "model-00001-of-00002.safetensors".into(),
                size: 5,
                sha256: Some(sha256.into()),
            }],
        };
        held(&hex(&Sha256::digest(b"first"))).write(&part).unwrap();
        let a = weights_fingerprint(&whole).unwrap();
        assert_eq!(weights_fingerprint(&part).unwrap(), a);
        // Another model's shard, as the hub described it, is not this model.
        held(&hex(&Sha256::digest(b"other"))).write(&part).unwrap();
        assert_ne!(weights_fingerprint(&part).unwrap().0, a.0);
    }
}
