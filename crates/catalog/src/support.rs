//! Whether Minibar's engine runs a catalog entry. The engine's own table of architectures
//! (`minibar_engine::models::supported_architectures()`) is the only source of "runs": callers
//! pass it in, so this crate stays free of MLX and an architecture the engine gains is
//! runnable everywhere at once. What the catalog adds is the reason the others do not run
//! yet, per architecture, from models.toml's `[not_yet]` table.

use serde::Serialize;

/// Whether an entry runs, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Support {
    /// The engine runs this architecture.
    Runs,
    /// The engine does not run it yet, for this reason.
    NotYet(String),
    /// The engine does not run it, and the catalog gives no reason: a catalog mistake (the
    /// built-in catalog's test forbids it); shown like `NotYet`.
    Unknown(String),
}

impl Support {
    /// Decides for `model_type` given the engine's table and the catalog's reasons.
    pub fn of(
        model_type: &str,
        engine_runs: &[&str],
        reasons: &std::collections::BTreeMap<String, String>,
    ) -> Support {
        if engine_runs.contains(&model_type) {
            Support::Runs
        } else if let Some(reason) = reasons.get(model_type) {
            Support::NotYet(reason.clone())
        } else {
            Support::Unknown(format!(
                "Minibar's engine does not run `{model_type}` models (it runs {})",
                engine_runs.join(", ")
            ))
        }
    }

    /// Whether the engine runs it.
    pub fn runs(&self) -> bool {
        matches!(self, Support::Runs)
    }

    /// Why it does not run (`None` when it does).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Support::Runs => None,
            Support::NotYet(r) | Support::Unknown(r) => Some(r),
        }
    }

    /// A short label for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Support::Runs => "runs",
            Support::NotYet(_) | Support::Unknown(_) => "not supported yet",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_table_decides_and_the_catalog_explains() {
        let reasons = [("qwen3_moe".to_string(), "experts".to_string())].into();
        let engine = ["llama", "qwen3"];
        assert_eq!(Support::of("llama", &engine, &reasons), Support::Runs);
        assert_eq!(
            Support::of("qwen3_moe", &engine, &reasons),
            Support::NotYet("experts".into())
        );
        // Once the engine's table gains it, the reason no longer matters.
        assert!(Support::of("qwen3_moe", &["qwen3_moe"], &reasons).runs());
        let unknown = Support::of("mamba", &engine, &reasons);
        assert!(matches!(unknown, Support::Unknown(_)));
        assert!(unknown.reason().unwrap().contains("llama, qwen3"));
        assert_eq!(unknown.label(), "not supported yet");
    }
}
