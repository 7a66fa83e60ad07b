//! Published reference figures for Apple chips, with their sources, for the app to show
//! beside this machine's run. The data lives in `benches/reference/apple.toml`.

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// The reference file, compiled in.
pub const APPLE_TOML: &str = include_str!("../../../benches/reference/apple.toml");

/// One published figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceEntry {
    /// Chip (`M4 Max`).
    pub chip: String,
    /// Model (`LLaMA-2 7B`).
    pub model: String,
    /// Weights format (`Q4_0`, `4-bit`).
    pub quant: String,
    /// Engine (`llama.cpp`, `mlx-lm`).
    pub engine: String,
    /// Test label (`tg128`, `pp2048`).
    pub test: String,
    /// Tokens per second (absent for memory-only entries).
    #[serde(default)]
    pub ts: Option<f64>,
    /// Peak memory, GB, where published.
    #[serde(default)]
    pub peak_gb: Option<f64>,
    /// Key into [`ReferenceData::sources`].
    pub source: String,
}

/// A source document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Short key used by entries.
    pub key: String,
    /// Title.
    pub title: String,
    /// Where to read it.
    pub url: String,
}

/// The whole reference file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceData {
    /// Sources.
    pub sources: Vec<Source>,
    /// Figures.
    pub entries: Vec<ReferenceEntry>,
}

/// Parses the compiled-in Apple reference data.
pub fn apple_reference() -> Result<ReferenceData> {
    toml::from_str(APPLE_TOML)
        .map_err(|e| BenchError::Format(format!("benches/reference/apple.toml: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_parses_and_every_entry_has_a_source() {
        let r = super::apple_reference().unwrap();
        assert!(r.entries.len() >= 5);
        for e in &r.entries {
            assert!(r.sources.iter().any(|s| s.key == e.source), "{e:?}");
            assert!(e.ts.is_some() || e.peak_gb.is_some(), "{e:?}");
        }
        let m4max = r
            .entries
            .iter()
            .find(|e| e.chip == "M4 Max" && e.engine == "llama.cpp")
            .unwrap();
        assert_eq!(m4max.ts, Some(83.1));
    }
}
