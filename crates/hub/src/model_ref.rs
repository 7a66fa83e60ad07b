//! `org/name[@revision]`: which repository and revision a pull means.

use std::fmt;
use std::str::FromStr;

use crate::error::HubError;

/// The default revision of a Hugging Face repository.
pub const DEFAULT_REVISION: &str = "main";

/// A model repository on the hub and the revision wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    /// `org/name`.
    pub repo_id: String,
    /// Branch, tag or commit; `main` when not given.
    pub revision: String,
}

impl ModelRef {
    /// Builds a reference from parts, checking the repository id.
    pub fn new(repo_id: &str, revision: Option<&str>) -> Result<Self, HubError> {
        let valid_part = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let mut parts = repo_id.split('/');
        let (Some(org), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(HubError::InvalidModelId(repo_id.to_string()));
        };
        if !valid_part(org) || !valid_part(name) {
            return Err(HubError::InvalidModelId(repo_id.to_string()));
        }
        let revision = match revision {
            None => DEFAULT_REVISION.to_string(),
            Some(r) if !r.is_empty() && !r.contains("..") && !r.starts_with('/') => r.to_string(),
            Some(_) => {
                return Err(HubError::InvalidModelId(format!(
                    "{repo_id}@{}",
                    revision.unwrap_or_default()
                )))
            }
        };
        Ok(ModelRef {
            repo_id: repo_id.to_string(),
            revision,
        })
    }

    /// Whether the revision is a full commit hash (then no ref file is written).
    pub fn revision_is_commit(&self) -> bool {
        is_commit_hash(&self.revision)
    }
}

/// Whether a string is a full 40-hex-digit git commit hash.
pub fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl FromStr for ModelRef {
    type Err = HubError;

    /// Parses `org/name` or `org/name@revision`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.split_once('@') {
            Some((repo, rev)) => ModelRef::new(repo, Some(rev)),
            None => ModelRef::new(s, None),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.revision == DEFAULT_REVISION {
            write!(f, "{}", self.repo_id)
        } else {
            write!(f, "{}@{}", self.repo_id, self.revision)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repo_and_revision() {
        let r: ModelRef = "mlx-community/Qwen3-0.6B-4bit".parse().unwrap();
        assert_eq!(r.repo_id, "mlx-community/Qwen3-0.6B-4bit");
        assert_eq!(r.revision, "main");
        let r: ModelRef = "org/name@v1.0".parse().unwrap();
        assert_eq!(r.revision, "v1.0");
        assert_eq!(r.to_string(), "org/name@v1.0");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let r: ModelRef = format!("org/name@{sha}").parse().unwrap();
        assert!(r.revision_is_commit());
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in [
            "",
            "name",
            "a/b/c",
            "../x",
            "a/..",
            "org/na me",
            "org/name@",
            "a/b@../x",
        ] {
            assert!(bad.parse::<ModelRef>().is_err(), "{bad} should be rejected");
        }
    }
}
