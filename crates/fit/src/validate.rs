//! Predicted peaks against measured ones: the tolerance (5% or 50 MB, whichever is
//! larger) and a Markdown table for benchmarks to print.

use serde::Serialize;

/// Relative tolerance.
pub const REL_TOLERANCE: f64 = 0.05;
/// Absolute tolerance in bytes, for small models where 5% is a few megabytes.
pub const ABS_TOLERANCE: u64 = 50_000_000;

/// Whether `predicted` is within 5% or 50 MB (whichever is larger) of `measured`.
pub fn within_tolerance(predicted: u64, measured: u64) -> bool {
    let allowed = ((measured as f64 * REL_TOLERANCE) as u64).max(ABS_TOLERANCE);
    predicted.abs_diff(measured) <= allowed
}

/// One prediction checked against one measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// What was run (model, quantization, context).
    pub label: String,
    /// Predicted peak bytes.
    pub predicted: u64,
    /// Measured peak bytes.
    pub measured: u64,
}

impl Comparison {
    /// Signed relative error of the prediction.
    pub fn error(&self) -> f64 {
        if self.measured == 0 {
            return f64::INFINITY;
        }
        self.predicted as f64 / self.measured as f64 - 1.0
    }

    /// Whether the prediction is within tolerance.
    pub fn ok(&self) -> bool {
        within_tolerance(self.predicted, self.measured)
    }
}

/// A Markdown table of comparisons, with a last line counting the rows within tolerance.
pub fn comparison_table(rows: &[Comparison]) -> String {
    let mut s = String::from(
        "| run | measured | predicted | error | within 5% or 50 MB |\n|---|---:|---:|---:|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.1} MB | {:.1} MB | {:+.1}% | {} |\n",
            r.label,
            r.measured as f64 / 1e6,
            r.predicted as f64 / 1e6,
            r.error() * 100.0,
            if r.ok() { "yes" } else { "NO" }
        ));
    }
    let ok = rows.iter().filter(|r| r.ok()).count();
    s.push_str(&format!(
        "\n{ok} of {} rows within tolerance.\n",
        rows.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_is_the_larger_of_5_percent_and_50_mb() {
        // Small: 50 MB dominates.
        assert!(within_tolerance(200_000_000, 160_000_000));
        assert!(!within_tolerance(211_000_000, 160_000_000));
        // Large: 5% dominates.
        assert!(within_tolerance(10_400_000_000, 10_000_000_000));
        assert!(!within_tolerance(10_600_000_000, 10_000_000_000));
        assert!(within_tolerance(9_600_000_000, 10_000_000_000));
    }

    #[test]
    fn the_table_marks_misses() {
        let rows = [
            Comparison {
                label: "a".into(),
                predicted: 105,
                measured: 100,
            },
            Comparison {
                label: "b".into(),
                predicted: 2_000_000_000,
                measured: 1_000_000_000,
            },
        ];
        let t = comparison_table(&rows);
        assert!(t.contains("| a | 0.0 MB | 0.0 MB | +5.0% | yes |"), "{t}");
        assert!(t.contains("+100.0% | NO |"), "{t}");
        assert!(t.ends_with("1 of 2 rows within tolerance.\n"));
    }
}
