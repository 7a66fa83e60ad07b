//! What the ranks agree on before any token: the same Minibar and cluster protocol, the same
//! model (shape and weights), and each node's memory, from which every rank derives the same
//! layer split. Each rank puts its announcement in its own row of a zero matrix and one
//! `all_sum` gives every rank every row.
//!
//! The weights' fingerprint samples the files (64 KiB at 64 evenly spaced places, the
//! header and the end included, plus the length) rather than hashing every byte: a model of
//! tens of GB would otherwise take a minute to check, and two different models or builds of
//! one never agree on all samples.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
};

use mlx_rs::Array;
use sha2::{Digest, Sha256};

use crate::{
    dist::Group,
    error::{ClusterError, Result},
    hostfile::Hostfile,
};

/// Bumped whenever the messages ranks exchange change.
pub const PROTOCOL: u32 = 1;

const SAMPLES: u64 = 64;
const SAMPLE_BYTES: u64 = 64 << 10;
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
    /// The sampled hash of the model files.
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

/// The sampled fingerprint and total size of a model file, or of a model folder's files.
pub fn weights_fingerprint(path: &Path) -> Result<(u64, u64)> {
    let io = |e: std::io::Error| ClusterError::Io {
        what: format!("reading {} for its fingerprint", path.display()),
        source: e,
    };
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io)? {
            let p = entry.map_err(io)?.path();
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_owned());
    }
    let mut h = Sha256::new();
    let mut total = 0;
    for f in &files {
        if let Some(name) = f.file_name().filter(|_| path.is_dir()) {
            h.update(name.to_string_lossy().as_bytes());
        }
        total += sample_file(f, &mut h).map_err(io)?;
    }
    Ok((first_u64(&h.finalize()), total))
}

fn sample_file(path: &Path, h: &mut Sha256) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    h.update(len.to_le_bytes());
    let mut buf = vec![0u8; SAMPLE_BYTES as usize];
    if len <= SAMPLES * SAMPLE_BYTES {
        let mut all = Vec::new();
        f.read_to_end(&mut all)?;
        h.update(&all);
        return Ok(len);
    }
    let span = len - SAMPLE_BYTES;
    for i in 0..SAMPLES {
        f.seek(SeekFrom::Start(span / (SAMPLES - 1) * i))?;
        f.read_exact(&mut buf)?;
        h.update(&buf);
    }
    Ok(len)
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

    #[test]
    fn one_changed_byte_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        let mut bytes: Vec<u8> = (0..(SAMPLES * SAMPLE_BYTES * 2) as usize)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&p, &bytes).unwrap();
        let (a, len) = weights_fingerprint(&p).unwrap();
        assert_eq!(len, bytes.len() as u64);
        // The sample at the middle of the file.
        let mid = (bytes.len() as u64 - SAMPLE_BYTES) / (SAMPLES - 1) * 32;
        bytes[mid as usize + 5] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert_ne!(weights_fingerprint(&p).unwrap().0, a);
    }
}
