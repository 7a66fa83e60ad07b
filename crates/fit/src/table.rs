//! "Which models fit": candidates (model × quantization) judged against one budget, in the
//! order a user picks from.

use serde::Serialize;

use crate::estimate::{estimate, max_context, Runtime, Workload};
use crate::quant::Quantization;
use crate::shape::ModelShape;
use crate::verdict::{verdict, Budget, FitLevel, Verdict};
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

/// Judges every candidate and orders the rows: comfortable fits first, largest model and then
/// highest precision first; then tight fits the same way; then what does not fit, closest first.
pub fn fit_table(
    candidates: &[Candidate],
    work: &Workload,
    runtime: &Runtime,
    budget: &Budget,
) -> Result<Vec<FitRow>, FitError> {
    let mut rows = candidates
        .iter()
        .map(|c| fit_row(c, work, runtime, budget))
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by(|a, b| {
        a.verdict.level.cmp(&b.verdict.level).then_with(|| {
            if a.verdict.level == FitLevel::WontFit {
                a.needed.cmp(&b.needed)
            } else {
                b.params
                    .cmp(&a.params)
                    .then(b.bits_per_weight.total_cmp(&a.bits_per_weight))
            }
        })
    });
    Ok(rows)
}

/// Judges one candidate.
pub fn fit_row(
    c: &Candidate,
    work: &Workload,
    runtime: &Runtime,
    budget: &Budget,
) -> Result<FitRow, FitError> {
    let est = estimate(&c.shape, &c.quant, work, runtime)?;
    Ok(FitRow {
        id: c.id.clone(),
        name: c.name.clone(),
        quant: c.quant.to_string(),
        repo: c.repo.clone(),
        params: est.params.total,
        bits_per_weight: est.bits_per_weight,
        weights: est.weights.total,
        needed: est.total,
        verdict: verdict(est.total, budget),
        max_context: max_context(&c.shape, &c.quant, work, runtime, budget.usable)?,
    })
}
