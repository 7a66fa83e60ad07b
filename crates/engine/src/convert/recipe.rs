//! mlx-lm's mixed-precision recipes (`mixed_2_6`, `mixed_3_4`, `mixed_3_6`, `mixed_4_6`): most
//! layers at the low bit width, and at the high one the value and down projections of the first
//! and last eighth of the layers and of every third layer between, and the output head, as
//! llama.cpp's Q4_K_M does. The choice follows mlx-lm 0.32's `mixed_quant_predicate_builder`.

use std::{fmt, str::FromStr};

use crate::{layers::QuantParams, quant_ops::QuantMode};

/// A mixed-precision recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipe {
    /// 2 bits, 6 for the sensitive layers.
    Mixed2_6,
    /// 3 bits, 4 for the sensitive layers.
    Mixed3_4,
    /// 3 bits, 6 for the sensitive layers.
    Mixed3_6,
    /// 4 bits, 6 for the sensitive layers.
    Mixed4_6,
}

impl Recipe {
    /// Every recipe mlx-lm defines.
    pub const ALL: [Recipe; 4] = [
        Recipe::Mixed2_6,
        Recipe::Mixed3_4,
        Recipe::Mixed3_6,
        Recipe::Mixed4_6,
    ];

    /// mlx-lm's name for it (`--quant-predicate`).
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Mixed2_6 => "mixed_2_6",
            Recipe::Mixed3_4 => "mixed_3_4",
            Recipe::Mixed3_6 => "mixed_3_6",
            Recipe::Mixed4_6 => "mixed_4_6",
        }
    }

    /// (low, high) bits.
    pub fn bits(self) -> (i32, i32) {
        match self {
            Recipe::Mixed2_6 => (2, 6),
            Recipe::Mixed3_4 => (3, 4),
            Recipe::Mixed3_6 => (3, 6),
            Recipe::Mixed4_6 => (4, 6),
        }
    }
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Recipe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Recipe::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown recipe `{s}` (choose mixed_2_6, mixed_3_4, mixed_3_6 or mixed_4_6)"
                )
            })
    }
}

/// A recipe applied to one model: which bits each layer gets.
#[derive(Debug, Clone)]
pub struct MixedPlan {
    recipe: Recipe,
    group_size: i32,
    /// Position of the layer index in a dotted module path (2 in `model.layers.7.mlp`).
    layer_location: usize,
    num_layers: i64,
}

impl MixedPlan {
    /// Plans `recipe` for a model whose quantizable modules are `modules` (dotted paths) and
    /// that has `num_layers` decoder blocks.
    pub fn new<'a>(
        recipe: Recipe,
        group_size: i32,
        modules: impl IntoIterator<Item = &'a str>,
        num_layers: i32,
    ) -> Result<Self, String> {
        let mut down: Vec<&str> = modules
            .into_iter()
            .filter(|m| m.contains("down_proj"))
            .collect();
        down.sort();
        let first = down.first().ok_or_else(|| {
            format!("{recipe} needs MLP `down_proj` layers, which this model does not have")
        })?;
        let parts: Vec<&str> = first.split('.').collect();
        // Like mlx-lm's loop, which ends on the last part when none is a number.
        let layer_location = parts
            .iter()
            .position(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or(parts.len().saturating_sub(1));
        Ok(MixedPlan {
            recipe,
            group_size,
            layer_location,
            num_layers: num_layers.into(),
        })
    }

    /// The settings of the module at `path`.
    pub fn params(&self, path: &str) -> QuantParams {
        let (low, high) = self.recipe.bits();
        let index: i64 = path
            .split('.')
            .nth(self.layer_location)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let n = self.num_layers;
        // Python's floor division and modulo: the index can be below n / 8.
        let use_more_bits = index < n.div_euclid(8)
            || index >= (7 * n).div_euclid(8)
            || (index - n.div_euclid(8)).rem_euclid(3) == 2;
        let sensitive = ["v_proj", "v_a_proj", "v_b_proj"]
            .iter()
            .any(|k| path.contains(k))
            || path.contains("down_proj");
        let bits = if (sensitive && use_more_bits) || path.contains("lm_head") {
            high
        } else {
            low
        };
        QuantParams {
            group_size: self.group_size,
            bits,
            mode: QuantMode::Affine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(recipe: Recipe, layers: i32) -> MixedPlan {
        let names: Vec<String> = (0..layers)
            .map(|i| format!("model.layers.{i}.mlp.down_proj"))
            .collect();
        MixedPlan::new(recipe, 64, names.iter().map(String::as_str), layers).unwrap()
    }

    #[test]
    fn sensitive_layers_get_more_bits() {
        let p = plan(Recipe::Mixed3_6, 30);
        // 30 layers: the first 3, the last 4 (26..) and every third from 5 get 6 bits.
        let six: Vec<i32> = (0..30)
            .filter(|i| p.params(&format!("model.layers.{i}.self_attn.v_proj")).bits == 6)
            .collect();
        assert_eq!(six, vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
        assert_eq!(p.params("model.layers.5.mlp.down_proj").bits, 6);
        assert_eq!(p.params("model.layers.6.mlp.down_proj").bits, 3);
        assert_eq!(p.params("model.layers.0.self_attn.q_proj").bits, 3);
        assert_eq!(p.params("model.embed_tokens").bits, 3);
        assert_eq!(p.params("lm_head").bits, 6);
        // Phi-3's fused projection contains "v_proj", as mlx-lm's substring test sees it.
        assert_eq!(p.params("model.layers.0.self_attn.qkv_proj").bits, 6);
        assert_eq!(plan(Recipe::Mixed3_4, 8).params("lm_head").bits, 4);
    }

    #[test]
    fn models_without_down_proj_are_refused() {
        let e = MixedPlan::new(Recipe::Mixed4_6, 64, ["model.layers.0.mlp.fc2"], 1).unwrap_err();
        assert!(e.contains("down_proj"), "{e}");
        assert!("mixed_5_6".parse::<Recipe>().is_err());
        assert_eq!("mixed_2_6".parse::<Recipe>(), Ok(Recipe::Mixed2_6));
    }
}
