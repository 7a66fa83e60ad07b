//! Which tensors a pipeline rank reads: its own decoder blocks, the embeddings if it embeds
//! (the first rank) or outputs through them (the last, tied), and the final norm and output
//! layer if it is the last. Decided here once, so the engine's load (which tensors it keeps)
//! and the hub's partial pull (which shards it downloads) cannot disagree: a shard the pull
//! left out holds nothing the load asks for.
//!
//! Invariant: a tensor a rank may use is never dropped. Names the rule does not know (extra
//! buffers, GGUF's non-block tensors, a vision tower) are kept; the tied embeddings of the
//! last rank are kept unless the caller knows the model has its own output layer.

use std::{ops::Range, path::Path};

use serde::{Deserialize, Serialize};

/// One rank's share of a model's decoder blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankLayers {
    /// The blocks this rank holds, `[start, end)`.
    pub layers: Range<usize>,
    /// Blocks in the model.
    pub of: usize,
}

impl RankLayers {
    /// Whether this rank embeds the tokens (it holds block 0).
    pub fn first(&self) -> bool {
        self.layers.start == 0
    }

    /// Whether this rank produces the logits (it holds the last block).
    pub fn last(&self) -> bool {
        self.layers.end >= self.of
    }

    /// Whether the rank holds every block.
    pub fn whole(&self) -> bool {
        self.first() && self.last()
    }

    /// Whether this rank reads the tensor `name`. `tied`: whether the output layer is the
    /// embeddings; `None` when unknown, which keeps them for the last rank.
    pub fn needs(&self, name: &str, tied: Option<bool>) -> bool {
        if let Some(i) = block_index(name) {
            return self.layers.contains(&i);
        }
        match Part::of(name) {
            Some(Part::Embeddings) => self.first() || (self.last() && tied != Some(false)),
            Some(Part::Output) => self.last(),
            None => true,
        }
    }
}

/// Whether the output layer is the embeddings, as far as config.json's `tie_word_embeddings`
/// (`config_tie`) and the checkpoint's tensor `names` tell: tied without an output layer,
/// untied only when the config says so and the output layer is there; `None` otherwise (the
/// architecture's default decides, so [`RankLayers::needs`] keeps the embeddings).
pub fn embeddings_tied<'a>(
    config_tie: Option<bool>,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<bool> {
    let has_head = names
        .into_iter()
        .any(|n| n.strip_prefix("language_model.").unwrap_or(n) == "lm_head.weight");
    match (config_tie, has_head) {
        (_, false) => Some(true),
        (Some(false), true) => Some(false),
        _ => None,
    }
}

/// The file a partial pull (`minibar pull --layers`) leaves in a model folder: which layers it
/// holds and the files it lacks, so the library does not show it as a whole model and the
/// cluster's handshake can fingerprint the whole model from it.
pub const LAYERS_HELD_FILE: &str = ".minibar-layers.json";

/// What a model folder that holds only some layers' shards holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayersHeld {
    /// The layer ranges pulled, `[start, end)`, sorted and merged.
    pub layers: Vec<[usize; 2]>,
    /// Blocks in the model.
    pub of: usize,
    /// The model's files this folder lacks.
    pub missing: Vec<AbsentFile>,
}

/// A file of the model that a partial folder lacks, as the hub described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsentFile {
    /// Path in the model folder.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its content (lowercase hex), when the hub gave one.
    pub sha256: Option<String>,
}

impl LayersHeld {
    /// The marker of the folder `dir`, if it has a readable one.
    pub fn read(dir: &Path) -> Option<LayersHeld> {
        let text = std::fs::read(dir.join(LAYERS_HELD_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes the marker into `dir`, or removes it when nothing is missing.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let path = dir.join(LAYERS_HELD_FILE);
        if self.missing.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }

    /// Adds a range to those held, keeping them sorted and merged.
    pub fn add(&mut self, range: Range<usize>) {
        self.layers.push([range.start, range.end]);
        self.layers.sort_unstable();
        let mut merged: Vec<[usize; 2]> = Vec::new();
        for r in self.layers.drain(..) {
            match merged.last_mut() {
                Some(last) if r[0] <= last[1] => last[1] = last[1].max(r[1]),
                _ => merged.push(r),
            }
        }
        self.layers = merged;
    }

    /// "layers 0..12 only", as `minibar list` shows it.
    pub fn describe(&self) -> String {
        let ranges: Vec<String> = self
            .layers
            .iter()
            .map(|[a, b]| format!("{a}..{b}"))
            .collect();
        format!("layers {} only", ranges.join(", "))
    }
}

/// The non-block parts of a decoder that only some ranks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// `model.embed_tokens.*`.
    Embeddings,
    /// `model.norm.*` (the final norm) and `lm_head.*`.
    Output,
}

impl Part {
    /// Hugging Face / mlx-lm names, also under a prefix such as Gemma 3's `language_model.`.
    fn of(name: &str) -> Option<Part> {
        let name = name.strip_prefix("language_model.").unwrap_or(name);
        if name.starts_with("model.embed_tokens.") {
            Some(Part::Embeddings)
        } else if name.starts_with("model.norm.") || name.starts_with("lm_head.") {
            Some(Part::Output)
        } else {
            None
        }
    }
}

/// The decoder block a tensor belongs to, by its Hugging Face (`model.layers.N.`, also under
/// a prefix such as Gemma 3's `language_model.`) or GGUF (`blk.N.`) name.
pub fn block_index(name: &str) -> Option<usize> {
    let rest = match name.find("model.layers.") {
        Some(at) => &name[at + "model.layers.".len()..],
        None => name.strip_prefix("blk.")?,
    };
    rest.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(layers: Range<usize>) -> RankLayers {
        RankLayers { layers, of: 6 }
    }

    #[test]
    fn block_tensors_are_known_by_either_naming() {
        assert_eq!(block_index("model.layers.12.mlp.up_proj.weight"), Some(12));
        assert_eq!(
            block_index("language_model.model.layers.3.input_layernorm.weight"),
            Some(3)
        );
        assert_eq!(block_index("blk.7.attn_q.weight"), Some(7));
        assert_eq!(block_index("model.embed_tokens.weight"), None);
        assert_eq!(block_index("token_embd.weight"), None);
        assert_eq!(block_index("model.layers.x.bad"), None);
    }

    #[test]
    fn each_rank_reads_its_blocks_and_its_ends() {
        let (first, middle, last) = (rank(0..2), rank(2..4), rank(4..6));
        let block = "model.layers.3.self_attn.q_proj.weight";
        assert!(!first.needs(block, None) && middle.needs(block, None));
        assert!(!last.needs(block, None));
        let embed = "model.embed_tokens.weight";
        assert!(first.needs(embed, Some(false)));
        assert!(!middle.needs(embed, None));
        assert!(!last.needs(embed, Some(false)));
        // Tied, or not known to be untied: the last rank outputs through the embeddings.
        assert!(last.needs(embed, Some(true)) && last.needs(embed, None));
        for output in ["model.norm.weight", "lm_head.weight", "lm_head.scales"] {
            assert!(last.needs(output, None), "{output}");
            assert!(!first.needs(output, None) && !middle.needs(output, None));
        }
        // Prefixed names (Gemma 3) follow the same rule.
        assert!(!middle.needs("language_model.model.embed_tokens.weight", None));
        assert!(!middle.needs("language_model.model.norm.weight", None));
        assert!(!middle.needs("language_model.lm_head.weight", None));
        // Unknown names are kept by every rank.
        assert!(middle.needs("rope_freqs", None));
        assert!(middle.needs("token_embd.weight", None));
        assert_eq!(
            embeddings_tied(Some(false), ["lm_head.weight"]),
            Some(false)
        );
        assert_eq!(
            embeddings_tied(Some(false), ["model.norm.weight"]),
            Some(true)
        );
        assert_eq!(embeddings_tied(None, ["lm_head.weight"]), None);
        assert_eq!(embeddings_tied(Some(true), ["lm_head.weight"]), None);
        let mut held = LayersHeld {
            layers: vec![[4, 6]],
            of: 6,
            missing: Vec::new(),
        };
        held.add(0..2);
        held.add(2..3);
        assert_eq!(held.layers, [[0, 3], [4, 6]]);
        assert_eq!(held.describe(), "layers 0..3, 4..6 only");
        let whole = rank(0..6);
        assert!(whole.whole() && whole.needs(embed, Some(false)));
    }
}
