//! Which files of a repository a model needs: config, tokenizer, templates and safetensors
//! weights; not PyTorch, ONNX or GGUF copies unless asked for.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Patterns of the files a pull fetches.
#[derive(Clone, Debug)]
pub struct FileFilter {
    include: Vec<String>,
    extra: Vec<String>,
}

/// Top-level files an MLX / transformers model folder needs.
const DEFAULT_INCLUDE: &[&str] = &[
    "*.json",
    "*.safetensors",
    "*.jinja",
    "tokenizer.model",
    "tokenizer*",
    "*.tiktoken",
    "tiktoken.model",
    "merges.txt",
    "vocab.txt",
];

/// Weight formats that are skipped by default; named in errors so users can ask for them.
pub const OTHER_WEIGHT_SUFFIXES: &[&str] = &[
    ".gguf", ".bin", ".pth", ".pt", ".onnx", ".h5", ".msgpack", ".ckpt",
];

impl Default for FileFilter {
    fn default() -> Self {
        FileFilter {
            include: DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect(),
            extra: Vec::new(),
        }
    }
}

impl FileFilter {
    /// Also fetches files matching `pattern` (a glob on the path in the repo, e.g. `*Q4_0.gguf`).
    pub fn include(mut self, pattern: impl Into<String>) -> Self {
        self.extra.push(pattern.into());
        self
    }

    /// Whether a repository path is wanted.
    pub fn wants(&self, path: &str) -> bool {
        if build(&self.extra).is_match(path) {
            return true;
        }
        // Only top-level files: sub-folders hold other formats (onnx/, original/, ...).
        if path.contains('/') {
            return false;
        }
        let lower = path.to_ascii_lowercase();
        if OTHER_WEIGHT_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
            return false;
        }
        build(&self.include).is_match(path)
    }

    /// Whether a path was asked for explicitly with [`FileFilter::include`].
    pub fn explicitly_included(&self, path: &str) -> bool {
        build(&self.extra).is_match(path)
    }
}

fn build(patterns: &[String]) -> GlobSet {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        // An invalid user pattern matches nothing rather than failing the pull.
        if let Ok(glob) = Glob::new(p) {
            set.add(glob);
        }
    }
    set.build().unwrap_or_else(|_| GlobSet::empty())
}

/// Whether a path is a weight file in a format other than safetensors.
pub fn is_other_weight(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    OTHER_WEIGHT_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_model_files_only() {
        let f = FileFilter::default();
        for yes in [
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "tokenizer.model",
            "chat_template.jinja",
            "model.safetensors",
            "model-00001-of-00002.safetensors",
            "model.safetensors.index.json",
            "merges.txt",
        ] {
            assert!(f.wants(yes), "{yes}");
        }
        for no in [
            "pytorch_model.bin",
            "model.gguf",
            "consolidated.pth",
            "original/params.json",
            "onnx/model.onnx",
            "README.md",
            ".gitattributes",
            "flax_model.msgpack",
        ] {
            assert!(!f.wants(no), "{no}");
        }
    }

    #[test]
    fn include_adds_files() {
        let f = FileFilter::default().include("*Q4_0.gguf");
        assert!(f.wants("model-Q4_0.gguf"));
        assert!(!f.wants("model-Q8_0.gguf"));
        assert!(f.explicitly_included("model-Q4_0.gguf"));
    }
}
