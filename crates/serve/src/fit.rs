//! The memory-fit decision before loading: minibar-fit's one gate ([`minibar_fit::admit`]),
//! asked before the server starts and before each load, so a model that cannot fit is refused
//! with the numbers instead of freezing the machine. The engine's load asks the same gate
//! again and sets MLX's memory limits from its answer.

use std::path::Path;

use crate::ServeError;

/// Refuses a model that would not fit the memory available now with one sequence of
/// `context` tokens (the default workload's context when unknown). More sequences share what
/// is left: their caches grow only as they are used.
pub(crate) fn check(path: &Path, context: Option<usize>) -> Result<(), ServeError> {
    let request = minibar_fit::LoadRequest {
        context: context.map(|c| c as u64),
        ..Default::default()
    };
    match minibar_fit::admit(path, &request) {
        Ok(_) => Ok(()),
        Err(refusal) => Err(ServeError::WontFit(refusal.verdict.reason)),
    }
}
