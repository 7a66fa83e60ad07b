//! "Which Mac runs what" for the Models view: the catalog's runnable models in each of their
//! formats on every unified-memory size Apple sells, each cell minibar-fit's `assess` (through
//! `what_if_table`, the same call `minibar fit --table` makes).

use minibar_catalog::Catalog;
use minibar_fit::{FitLevel, KvFormat, Runtime, Thresholds, Workload, MAC_MEMORY_SIZES_GB};

use crate::types::{AppError, FitThresholds, FitVerdict, WhatIfCell, WhatIfRow, WhatIfTable};

/// KV cache bits `mlx-lm --kv-bits` accepts.
const KV_BITS: [u8; 6] = [2, 3, 4, 5, 6, 8];

/// The table at `context` tokens, with the KV cache at `kv_bits` (the model's dtype when
/// `None`), judged for Metal with the default thresholds.
pub fn table(
    catalog: &Catalog,
    context: u64,
    kv_bits: Option<u8>,
) -> Result<WhatIfTable, AppError> {
    if context == 0 {
        return Err(AppError::invalid("the context must be at least one token"));
    }
    if kv_bits.is_some_and(|b| !KV_BITS.contains(&b)) {
        return Err(AppError::invalid(
            "KV cache bits must be 2, 3, 4, 5, 6 or 8",
        ));
    }
    let work = Workload {
        kv: match kv_bits {
            Some(bits) => KvFormat::Quantized { bits, group: 64 },
            None => KvFormat::Model,
        },
        ..Workload::with_context(context)
    };
    let thresholds = Thresholds::default();
    let candidates: Vec<_> = catalog
        .entries()
        .iter()
        .filter(|e| {
            catalog
                .support(e, minibar_engine::models::supported_architectures())
                .runs()
        })
        .flat_map(|e| e.candidates())
        .collect();
    let rows = minibar_fit::what_if_table(
        &candidates,
        &MAC_MEMORY_SIZES_GB,
        &work,
        &Runtime::metal(),
        &thresholds,
    )
    .map_err(|e| AppError::invalid(e.to_string()))?;
    Ok(WhatIfTable {
        context,
        kv_bits,
        sizes_gb: MAC_MEMORY_SIZES_GB.to_vec(),
        thresholds: FitThresholds {
            comfort_margin: thresholds.comfort_margin,
            headroom_bytes: thresholds.headroom,
        },
        rows: rows
            .into_iter()
            .map(|r| WhatIfRow {
                model_id: r.id,
                name: r.name,
                quant: r.quant,
                params_b: r.params as f64 / 1e9,
                needed_bytes: r.needed,
                cells: r
                    .cells
                    .into_iter()
                    .map(|c| WhatIfCell {
                        ram_gb: c.ram_gb,
                        verdict: match c.level {
                            FitLevel::Fits => FitVerdict::Fits,
                            FitLevel::Tight => FitVerdict::Tight,
                            FitLevel::WontFit => FitVerdict::WontFit,
                        },
                        max_context: c.max_context.unwrap_or(0),
                    })
                    .collect(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_70b_fits_a_64_gb_mac_at_4_bits_not_at_8() {
        let t = table(&Catalog::builtin().unwrap(), 8192, None).unwrap();
        let i = t.sizes_gb.iter().position(|&g| g == 64).unwrap();
        let cell = |quant: &str| {
            t.rows
                .iter()
                .find(|r| r.model_id == "llama-3.3-70b" && r.quant == quant)
                .unwrap()
                .cells[i]
                .clone()
        };
        assert_eq!(cell("4bit").verdict, FitVerdict::Fits);
        assert_eq!(cell("8bit").verdict, FitVerdict::WontFit);
        assert!(table(&Catalog::builtin().unwrap(), 8192, Some(7)).is_err());
    }
}
