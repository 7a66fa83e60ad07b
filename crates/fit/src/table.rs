//! "Which models fit": candidates (model × quantization) judged against one budget, in the
//! order a user picks from.

use serde::Serialize;

use crate::assess::{assess, Thresholds, Verdict};
use crate::estimate::{Runtime, Workload};
use crate::quant::Quantization;
use crate::shape::ModelShape;
use crate::verdict::{Budget, FitLevel};
use crate::FitError;

/// One model in one storage format.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Catalog id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Hyperparameters.
    pub shape: ModelShape,
    /// Storage format.
    pub quant: Quantization,
    /// Where to download this format, when known.
    pub repo: Option<String>,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitRow {
    /// Catalog id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Quantization label (`4bit`, `bf16`, `mixed_3_6`, ...).
    pub quant: String,
    /// Download repo, when known.
    pub repo: Option<String>,
    /// Parameters.
    pub params: u64,
    /// Mean storage bits per parameter.
    pub bits_per_weight: f64,
    /// Weight bytes.
    pub weights: u64,
    /// Predicted peak bytes at the table's workload.
    pub needed: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// The longest context that fits the budget (`None`: not even one token).
    pub max_context: Option<u64>,
}

/// Judges every candidate and orders the rows: comfortable fits first, the largest size class
/// (see [`size_class`]) and then the highest precision first; then tight fits the same way;
/// then what does not fit, closest first.
pub fn fit_table(
    candidates: &[Candidate],
    work: &Workload,
    runtime: &Runtime,
    budget: &Budget,
    thresholds: &Thresholds,
) -> Result<Vec<FitRow>, FitError> {
    let mut rows = candidates
        .iter()
        .map(|c| fit_row(c, work, runtime, budget, thresholds))
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by(|a, b| {
        a.verdict.level.cmp(&b.verdict.level).then_with(|| {
            if a.verdict.level == FitLevel::WontFit {
                a.needed.cmp(&b.needed)
            } else {
                size_class(b.params)
                    .cmp(&size_class(a.params))
                    .then(b.bits_per_weight.total_cmp(&a.bits_per_weight))
                    .then(b.params.cmp(&a.params))
                    .then(a.name.cmp(&b.name))
            }
        })
    });
    Ok(rows)
}

/// Parameters rounded to two significant digits, so that models of the same size (14.66B and
/// 14.77B) sort as equals and their quantizations are compared instead.
pub fn size_class(params: u64) -> u64 {
    let mut scale = 1u64;
    while params / scale >= 100 {
        scale *= 10;
    }
    (params + scale / 2) / scale * scale
}

/// Judges one candidate.
pub fn fit_row(
    c: &Candidate,
    work: &Workload,
    runtime: &Runtime,
    budget: &Budget,
    thresholds: &Thresholds,
) -> Result<FitRow, FitError> {
    let a = assess(&c.shape, &c.quant, work, runtime, budget, thresholds)?;
    let est = a.estimate;
    Ok(FitRow {
        id: c.id.clone(),
        name: c.name.clone(),
        quant: c.quant.to_string(),
        repo: c.repo.clone(),
        params: est.params.total,
        bits_per_weight: est.bits_per_weight,
        weights: est.weights.total,
        needed: est.total,
        verdict: a.verdict,
        max_context: a.max_context,
    })
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_to_two_significant_digits() {
        assert_eq!(size_class(14_659_507_200), 15_000_000_000);
        assert_eq!(size_class(14_768_307_200), 15_000_000_000);
        assert_eq!(size_class(8_030_261_248), 8_000_000_000);
        assert_eq!(size_class(8_190_735_360), 8_200_000_000);
        assert_eq!(size_class(134_515_008), 130_000_000);
        assert_eq!(size_class(42), 42);
    }
}
