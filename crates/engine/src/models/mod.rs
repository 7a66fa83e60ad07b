//! The architectures Minibar runs: one table (`ARCHITECTURES`), one module each, named and laid
//! out like mlx-lm's file of the same name. A module states a `spec::Spec` (what differs from
//! the shared decoder in `transformer`) and, where mlx-lm has one, a `sanitize` of the
//! checkpoint's weights; `spec::build` loads every architecture the same way.
//!
//! The table is the only answer to "which architectures run": config.json is checked against
//! it, and the catalog, CLI and app ask `supported_architectures()`.

pub mod gemma3;
pub mod gpt_oss;
pub mod llama;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod qwen3_moe;
pub mod spec;
pub mod transformer;

use std::sync::OnceLock;

use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
    layers::QuantParams,
    weights::Tensors,
};
pub use transformer::Transformer;

/// One architecture: the config.json `model_type`s it reads and how its weights load.
pub struct Architecture {
    /// The `model_type` values (aliases share a layout).
    pub model_types: &'static [&'static str],
    /// What differs from the shared decoder, for a config.
    pub spec: fn(&ModelArgs) -> Result<spec::Spec>,
    /// mlx-lm's `sanitize`: checkpoint names and layouts to the ones `spec` loads (Qwen3-MoE
    /// stacks its experts). `minibar quantize` applies it too, as `mlx_lm.convert` does.
    pub sanitize: Option<fn(&ModelArgs, &mut Tensors) -> Result<()>>,
    /// mlx-lm's `quant_predicate`: layers quantized with fixed settings whatever the rest get
    /// (Qwen3-MoE's router: 8 bits in groups of 64).
    pub quant_override: Option<fn(&str) -> Option<QuantParams>>,
}

/// Every architecture Minibar runs.
pub static ARCHITECTURES: &[Architecture] = &[
    Architecture {
        model_types: &["llama", "mistral"],
        spec: llama::spec,
        sanitize: None,
        quant_override: None,
    },
    Architecture {
        model_types: &["qwen2"],
        spec: qwen2::spec,
        sanitize: None,
        quant_override: None,
    },
    Architecture {
        model_types: &["qwen3"],
        spec: qwen3::spec,
        sanitize: None,
        quant_override: None,
    },
    Architecture {
        model_types: &["qwen3_moe"],
        spec: qwen3_moe::spec,
        sanitize: Some(qwen3_moe::sanitize),
        quant_override: Some(qwen3_moe::quant_override),
    },
    Architecture {
        model_types: &["gemma3_text", "gemma3"],
        spec: gemma3::spec,
        sanitize: Some(gemma3::sanitize),
        quant_override: None,
    },
    Architecture {
        model_types: &["gpt_oss"],
        spec: gpt_oss::spec,
        sanitize: Some(gpt_oss::sanitize),
        quant_override: Some(gpt_oss::quant_override),
    },
    Architecture {
        model_types: &["phi3"],
        spec: phi3::spec,
        sanitize: None,
        quant_override: None,
    },
];

/// The `model_type`s Minibar runs, from `ARCHITECTURES`.
pub fn supported_architectures() -> &'static [&'static str] {
    static TYPES: OnceLock<Vec<&'static str>> = OnceLock::new();
    TYPES.get_or_init(|| {
        ARCHITECTURES
            .iter()
            .flat_map(|a| a.model_types.iter().copied())
            .collect()
    })
}

/// The architecture that reads `model_type`.
pub fn architecture(model_type: &str) -> Option<&'static Architecture> {
    ARCHITECTURES
        .iter()
        .find(|a| a.model_types.contains(&model_type))
}

fn unsupported(tensors: &Tensors, model_type: &str) -> EngineError {
    EngineError::UnsupportedArchitecture {
        path: tensors.source().to_owned(),
        model_type: model_type.to_owned(),
        supported: supported_architectures().join(", "),
    }
}

/// Applies the architecture's `sanitize` (if any) to checkpoint tensors.
pub fn sanitize(args: &ModelArgs, tensors: &mut Tensors) -> Result<()> {
    let arch =
        architecture(&args.model_type).ok_or_else(|| unsupported(tensors, &args.model_type))?;
    match arch.sanitize {
        Some(f) => f(args, tensors),
        None => Ok(()),
    }
}

/// Builds the model `args.model_type` names from its weights.
pub fn build(args: ModelArgs, tensors: Tensors) -> Result<Transformer> {
    let all = 0..args.num_hidden_layers.max(0) as usize;
    build_layers(args, tensors, all)
}

/// Builds only the decoder blocks `layers` (a pipeline rank's share); `tensors` need not hold
/// the other blocks' weights.
pub fn build_layers(
    args: ModelArgs,
    mut tensors: Tensors,
    layers: std::ops::Range<usize>,
) -> Result<Transformer> {
    let arch =
        architecture(&args.model_type).ok_or_else(|| unsupported(&tensors, &args.model_type))?;
    if let Some(f) = arch.sanitize {
        f(&args, &mut tensors)?;
    }
    let spec = (arch.spec)(&args)?;
    spec::build(args, tensors, spec, layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_type_has_one_architecture() {
        let types = supported_architectures();
        for t in types {
            let owners = ARCHITECTURES
                .iter()
                .filter(|a| a.model_types.contains(t))
                .count();
            assert_eq!(owners, 1, "{t}");
        }
        assert!(types.contains(&"qwen3_moe") && types.contains(&"gemma3_text"));
        assert!(architecture("deepseek_v3").is_none());
    }
}
