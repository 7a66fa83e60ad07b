//! Which models a run covers: the default model first, then every other installed model from
//! the smallest up, so a user sees how speed falls with size (models that won't fit are
//! skipped by the suite itself, with the reason).

use std::path::{Path, PathBuf};

/// One installed model: where it loads from and its size on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// File or folder to load.
    pub path: PathBuf,
    /// Bytes on disk, which orders the ladder.
    pub size_bytes: u64,
}

fn same(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The default model, then the other installed models by size (ties by path), each once.
pub fn ladder(default: &Path, installed: &[Installed]) -> Vec<PathBuf> {
    let mut rest: Vec<&Installed> = installed
        .iter()
        .filter(|m| !same(&m.path, default))
        .collect();
    rest.sort_by(|a, b| a.size_bytes.cmp(&b.size_bytes).then(a.path.cmp(&b.path)));
    let mut out = vec![default.to_path_buf()];
    for m in rest {
        if !out.iter().any(|p| same(p, &m.path)) {
            out.push(m.path.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str, size: u64) -> Installed {
        Installed {
            path: PathBuf::from(path),
            size_bytes: size,
        }
    }

    #[test]
    fn default_first_then_smallest_up_without_repeats() {
        let got = ladder(
            Path::new("/models/default"),
            &[
                m("/models/big", 9_000),
                m("/models/default", 100),
                m("/models/small", 500),
                m("/models/mid", 2_000),
                m("/models/small", 500),
            ],
        );
        let names: Vec<_> = got
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "/models/default",
                "/models/small",
                "/models/mid",
                "/models/big"
            ]
        );
    }

    #[test]
    fn the_same_folder_by_another_path_is_not_run_twice() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let via_dot = dir.path().join(".").join("a");
        let got = ladder(&a, &[m(via_dot.to_str().unwrap(), 10)]);
        assert_eq!(got, vec![a]);
    }
}
