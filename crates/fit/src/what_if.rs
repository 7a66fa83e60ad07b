//! "Which Mac runs what": every candidate judged on every unified-memory size Apple sells, one
//! [`assess`] per cell, so the table and a single `minibar fit --ram` never disagree.

use serde::Serialize;

use crate::assess::{assess, Thresholds};
use crate::estimate::{Runtime, Workload};
use crate::table::Candidate;
use crate::verdict::{Budget, FitLevel};
use crate::FitError;

/// Apple silicon's unified-memory sizes, in GB as Apple counts them (2^30 bytes).
pub const MAC_MEMORY_SIZES_GB: [u64; 13] = [8, 16, 18, 24, 32, 36, 48, 64, 96, 128, 192, 256, 512];

/// One model format on one Mac size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIfCell {
    /// Unified memory, GB (2^30 bytes).
    pub ram_gb: u64,
    /// The verdict's level.
    pub level: FitLevel,
    /// The longest context that fits at all (`None`: not even one token).
    pub max_context: Option<u64>,
}

/// One model format across the Mac sizes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIfRow {
    /// Catalog id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Quantization label.
    pub quant: String,
    /// Parameters.
    pub params: u64,
    /// Predicted peak bytes at the workload.
    pub needed: u64,
    /// One cell per size, in the order asked for.
    pub cells: Vec<WhatIfCell>,
}

/// Judges every candidate on a Mac of each of `sizes_gb` (nothing else running, Metal).
pub fn what_if_table(
    candidates: &[Candidate],
    sizes_gb: &[u64],
    work: &Workload,
    runtime: &Runtime,
    thresholds: &Thresholds,
) -> Result<Vec<WhatIfRow>, FitError> {
    candidates
        .iter()
        .map(|c| {
            let mut cells = Vec::with_capacity(sizes_gb.len());
            let mut first = None;
            for &ram_gb in sizes_gb {
                let budget = Budget::what_if(ram_gb << 30);
                let a = assess(&c.shape, &c.quant, work, runtime, &budget, thresholds)?;
                cells.push(WhatIfCell {
                    ram_gb,
                    level: a.verdict.level,
                    max_context: a.max_context,
                });
                first.get_or_insert(a.estimate);
            }
            let est = match first {
                Some(e) => e,
                None => crate::estimate::estimate(&c.shape, &c.quant, work, runtime)?,
            };
            Ok(WhatIfRow {
                id: c.id.clone(),
                name: c.name.clone(),
                quant: c.quant.to_string(),
                params: est.params.total,
                needed: est.total,
                cells,
            })
        })
        .collect()
}
