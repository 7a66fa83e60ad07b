//! The memory-fit decision before loading: minibar-fit's one verdict, so a model that cannot
//! fit is refused with the reason instead of freezing the machine. A model folder is judged by
//! its config.json's shape for one sequence of the served context (more sequences share what
//! is left: their caches grow only as they are used); a GGUF file, whose shape the fit crate
//! does not read, by the bytes of its weights.

use std::path::Path;

use crate::ServeError;

/// Refuses a model that would not fit the memory available now with one sequence of
/// `context` tokens (the default workload's context when unknown).
pub(crate) fn check(path: &Path, context: Option<usize>) -> Result<(), ServeError> {
    let budget = minibar_fit::Budget::this_machine(&minibar_fit::snapshot(), 0, None);
    let thresholds = minibar_fit::Thresholds::default();
    let verdict = match folder_model(path) {
        Some((shape, quant)) => {
            let defaults = minibar_fit::Workload::default();
            let work = minibar_fit::Workload {
                context: context.map_or(defaults.context, |c| c as u64),
                ..defaults
            };
            let runtime = minibar_fit::Runtime::native();
            match minibar_fit::assess(&shape, &quant, &work, &runtime, &budget, &thresholds) {
                Ok(a) => a.verdict,
                Err(_) => minibar_fit::assess_bytes(size_on_disk(path), &budget, &thresholds),
            }
        }
        None => minibar_fit::assess_bytes(size_on_disk(path), &budget, &thresholds),
    };
    match verdict.level {
        minibar_fit::FitLevel::WontFit => Err(ServeError::WontFit(verdict.reason)),
        _ => Ok(()),
    }
}

/// The shape and quantization of a model folder, from its config.json.
fn folder_model(path: &Path) -> Option<(minibar_fit::ModelShape, minibar_fit::Quantization)> {
    let text = std::fs::read_to_string(path.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    minibar_fit::model_from_config(&config).ok()
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
