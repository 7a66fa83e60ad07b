//! The memory-fit decision before loading: minibar-fit's one verdict, for the bytes of the
//! model's files against this machine's memory, so a model that cannot fit is refused
//! instead of freezing the machine.

use std::path::Path;

use crate::ServeError;

/// Refuses a model whose weights would not fit the memory available now.
pub(crate) fn check(path: &Path) -> Result<(), ServeError> {
    let needed = size_on_disk(path);
    let budget = minibar_fit::Budget::this_machine(&minibar_fit::snapshot(), 0, None);
    let verdict = minibar_fit::assess_bytes(needed, &budget, &minibar_fit::Thresholds::default());
    match verdict.level {
        minibar_fit::FitLevel::WontFit => Err(ServeError::WontFit(verdict.reason)),
        _ => Ok(()),
    }
}

/// Bytes of a model file, or of the weight files in a model folder.
fn size_on_disk(path: &Path) -> u64 {
    if path.is_file() {
        return path.metadata().map_or(0, |m| m.len());
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".safetensors") || name.ends_with(".gguf")
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
