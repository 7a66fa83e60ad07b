//! Quantizing an installed model into a new one in Minibar's store, on the engine thread, with
//! `quantize-progress` events and cancellation.
//!
//! minibar-engine's quantizer starts from dense weights. A quantized source (a GGUF file, or a
//! quantized folder) is first expanded to dense f32 weights in a hidden folder of the store,
//! then quantized; the new weights then carry the source's rounding error as well as their own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minibar_engine::convert::{import_gguf, quantize_folder, ImportOptions, Target};
use minibar_engine::{CancelToken, EngineError};
use tauri::{AppHandle, Runtime};
use tauri_specta::Event;

use minibar_hub::library::Use;

use super::library::{self, quant_label, Installed};
use crate::state::AppState;
use crate::types::{
    AppError, AppErrorKind, AppResult, QuantizeProgress, QuantizeRequest, QuantizeState,
};

/// Bits the quantizer accepts.
pub const BITS: [u8; 6] = [2, 3, 4, 5, 6, 8];
/// Group sizes the quantizer accepts.
pub const GROUP_SIZES: [u32; 3] = [32, 64, 128];

/// Quantizations in flight, by the variant id they produce.
#[derive(Default, Clone)]
pub struct Quantizations {
    jobs: Arc<Mutex<HashMap<String, CancelToken>>>,
}

impl Quantizations {
    /// Stops the quantization producing `variant_id`; it ends with a `cancelled` event.
    pub fn cancel(&self, variant_id: &str) -> AppResult<()> {
        let jobs = self
            .jobs
            .lock()
            .map_err(|_| AppError::io("quantization state"))?;
        match jobs.get(variant_id) {
            Some(c) => {
                c.cancel();
                Ok(())
            }
            None => Err(AppError::not_found(format!(
                "no quantization of {variant_id} is running"
            ))),
        }
    }

    fn remove(&self, variant_id: &str) {
        if let Ok(mut j) = self.jobs.lock() {
            j.remove(variant_id);
        }
    }
}

/// What one job does.
struct Plan {
    source: PathBuf,
    dest: PathBuf,
    bits: i32,
    group_size: i32,
    /// Where dense weights go first when the source is quantized.
    dense: Option<PathBuf>,
}

/// The store folder name for `source` quantized as `label`: the source's own name, then the
/// label, which the library reads back as the variant's quantization.
/// Whether `name` is one of the dense folders a quantization of a quantized source writes
/// first (`.<name>.dense-<uuid>`) and removes when it ends.
fn is_dense_scratch(name: &str) -> bool {
    name.starts_with('.') && name.contains(".dense-")
}

/// Removes what quantizations killed with the app left in `store`: the engine's unfinished
/// folders no living writer holds, and the dense scratch folders, which only a running job of
/// this app uses (call it at start, before any job).
pub fn remove_leftovers(store: &Path) {
    let mut removed = minibar_engine::convert::remove_stale(store).unwrap_or_else(|e| {
        eprintln!("minibar: cannot clean {}: {e}", store.display());
        Vec::new()
    });
    for entry in std::fs::read_dir(store).into_iter().flatten().flatten() {
        let path = entry.path();
        if is_dense_scratch(&entry.file_name().to_string_lossy()) && path.is_dir() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => removed.push(path),
                Err(e) => eprintln!("minibar: cannot remove {}: {e}", path.display()),
            }
        }
    }
    for path in removed {
        eprintln!(
            "minibar: removed {} (left by an interrupted quantization)",
            path.display()
        );
    }
}

fn dest_name(source: &Installed, label: &str) -> String {
    let base = match &source.library_name {
        Some(n) => n.rsplit('/').next().unwrap_or(n).to_string(),
        None => source
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| source.model_id.clone()),
    };
    format!("{base}-{label}")
}

fn is_gguf(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Whether the folder's config.json says its weights are quantized.
fn folder_is_quantized(path: &Path) -> AppResult<bool> {
    let args = minibar_engine::config::ModelArgs::from_file(&path.join("config.json"))
        .map_err(|e| AppError::invalid(format!("{} cannot be quantized: {e}", path.display())))?;
    Ok(args.quantization.is_some())
}

fn engine_error(e: EngineError) -> AppError {
    match e {
        EngineError::Cancelled => AppError::new(AppErrorKind::Cancelled, "Quantization cancelled."),
        e => AppError::engine(format!("quantization failed: {e}")),
    }
}

/// Checks the request and starts the job; returns the variant id it will produce.
pub fn start<R: Runtime>(
    app: AppHandle<R>,
    state: &AppState,
    req: QuantizeRequest,
) -> AppResult<String> {
    if !BITS.contains(&req.bits) || !GROUP_SIZES.contains(&req.group_size) {
        return Err(AppError::invalid(format!(
            "{} bits in groups of {} is not offered: choose 2, 3, 4, 5, 6 or 8 bits and groups of 32, 64 or 128.",
            req.bits, req.group_size
        )));
    }
    let installed = library::installed(&state.catalog, &state.library())?;
    let source = installed
        .iter()
        .find(|i| i.variant_id == req.source_variant_id)
        .cloned()
        .ok_or_else(|| {
            AppError::not_found(format!("{} is not installed", req.source_variant_id))
        })?;
    let label = quant_label(req.bits as u32, req.group_size);
    let variant_id = format!("{}@{label}", source.model_id);
    if installed.iter().any(|i| i.variant_id == variant_id) {
        return Err(AppError::invalid(format!(
            "{variant_id} is already installed."
        )));
    }
    let name = dest_name(&source, &label);
    let dest = state.library().store.join(&name);
    if dest.exists() {
        return Err(AppError::invalid(format!(
            "{} already exists: delete it first.",
            dest.display()
        )));
    }
    let quantized_source = if is_gguf(&source.path) {
        true
    } else if source.path.is_dir() {
        folder_is_quantized(&source.path)?
    } else {
        return Err(AppError::invalid(format!(
            "{} is neither a GGUF file nor a model folder.",
            source.path.display()
        )));
    };
    let plan = Plan {
        source: source.path.clone(),
        dense: quantized_source.then(|| {
            state
                .library()
                .store
                .join(format!(".{name}.dense-{}", uuid::Uuid::new_v4()))
        }),
        dest,
        bits: req.bits as i32,
        group_size: req.group_size as i32,
    };
    let cancel = CancelToken::new();
    {
        let mut jobs = state
            .quantizations
            .jobs
            .lock()
            .map_err(|_| AppError::io("quantization state"))?;
        if jobs.contains_key(&variant_id) {
            return Err(AppError::invalid(format!(
                "{variant_id} is already being made."
            )));
        }
        jobs.insert(variant_id.clone(), cancel.clone());
    }
    let jobs = state.quantizations.clone();
    let (id, from) = (variant_id.clone(), req.source_variant_id.clone());
    // Held until the job ends: deleting the source meanwhile is refused with the reason.
    let in_use = library::hold(
        &state.library(),
        std::slice::from_ref(&plan.source),
        Use::Quantization,
    );
    // Unloads the chat model first: quantizing a model needs its memory and the machine.
    let task = Box::new(move || {
        let _in_use = in_use;
        let emit = |state, fraction, step: &str, error| {
            let _ = QuantizeProgress {
                variant_id: id.clone(),
                source_variant_id: from.clone(),
                state,
                fraction,
                step: step.to_string(),
                error,
            }
            .emit(&app);
        };
        // A panic must still end the job with an event, not the engine thread.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&plan, &cancel, &mut |f, step| {
                emit(QuantizeState::Running, f, step, None)
            })
        }))
        .unwrap_or_else(|_| Err(AppError::engine("Quantization crashed; see the app's log.")));
        jobs.remove(&id);
        match outcome {
            Ok(()) => emit(QuantizeState::Done, 1.0, "done", None),
            Err(e) if e.kind == AppErrorKind::Cancelled => {
                emit(QuantizeState::Cancelled, 0.0, "cancelled", None)
            }
            Err(e) => emit(QuantizeState::Failed, 0.0, "failed", Some(e)),
        }
    });
    if let Err(e) = state.engine.run_exclusive(task) {
        state.quantizations.remove(&variant_id);
        return Err(e);
    }
    Ok(variant_id)
}

/// Runs a plan, reporting `(fraction, step)`; removes the dense folder whatever happens.
fn run(plan: &Plan, cancel: &CancelToken, progress: &mut dyn FnMut(f64, &str)) -> AppResult<()> {
    let target = Target::Affine {
        bits: plan.bits,
        group_size: plan.group_size,
    };
    let step = format!("{} bits, groups of {}", plan.bits, plan.group_size);
    let Some(dense) = &plan.dense else {
        progress(0.0, &step);
        return convert(&plan.source, &plan.dest, target, cancel, &mut |f| {
            progress(f, &step)
        });
    };
    let result = (|| {
        progress(0.0, "expanding the source to dense weights");
        if is_gguf(&plan.source) {
            // import_gguf reports no progress and cannot stop midway; it takes seconds.
            import_gguf(&plan.source, dense, &ImportOptions { dequantize: true })
                .map_err(engine_error)?;
        } else {
            convert(
                &plan.source,
                dense,
                Target::Dense(mlx_rs::Dtype::Float32),
                cancel,
                &mut |f| progress(f * 0.5, "expanding the source to dense weights"),
            )?;
        }
        if cancel.is_cancelled() {
            return Err(engine_error(EngineError::Cancelled));
        }
        convert(dense, &plan.dest, target, cancel, &mut |f| {
            progress(0.5 + f * 0.5, &step)
        })
    })();
    let _ = std::fs::remove_dir_all(dense);
    result
}

/// One `quantize_folder` pass, reporting 0..1 and stopping when `cancel` is set.
fn convert(
    src: &Path,
    dest: &Path,
    target: Target,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(f64),
) -> AppResult<()> {
    let mut last = -1.0;
    quantize_folder(src, dest, target, |done, total| {
        let f = done as f64 / total.max(1) as f64;
        // A few dozen events per pass, not one per tensor.
        if f - last >= 0.02 {
            last = f;
            progress(f);
        }
        !cancel.is_cancelled()
    })
    .map(|_| ())
    .map_err(engine_error)
}

#[cfg(test)]
mod tests {
    #[test]
    fn leftovers_of_killed_quantizations_are_removed_and_models_kept() {
        let store = tempfile::tempdir().unwrap();
        let dense = store.path().join(".SmolLM2.dense-1234");
        let partial = store.path().join(".SmolLM2@4bit.partial-999999");
        for d in [&dense, &partial] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("model.safetensors"), b"half").unwrap();
        }
        // The unfinished folder's writer is gone: its lock file is there, unheld.
        std::fs::write(partial.join(".writing"), b"").unwrap();
        let model = store.path().join("SmolLM2@4bit");
        std::fs::create_dir_all(&model).unwrap();
        remove_leftovers(store.path());
        assert!(!dense.exists() && !partial.exists());
        assert!(model.exists());
    }

    use super::*;

    fn installed(path: &str, library_name: Option<&str>) -> Installed {
        Installed {
            variant_id: "smollm2-135m@q4_1".into(),
            model_id: "smollm2-135m".into(),
            name: "SmolLM2".into(),
            quant: "q4_1".into(),
            path: PathBuf::from(path),
            size_bytes: 1,
            bits_per_weight: None,
            library_name: library_name.map(str::to_owned),
            unverified: Vec::new(),
        }
    }

    #[test]
    fn new_folders_are_named_after_the_source_and_the_quantization() {
        let gguf = installed("/x/SmolLM2-135M-Instruct.Q4_1.gguf", None);
        assert_eq!(dest_name(&gguf, "4bit"), "SmolLM2-135M-Instruct.Q4_1-4bit");
        let hf = installed("/hf/snap", Some("mlx-community/SmolLM2-135M-Instruct"));
        assert_eq!(dest_name(&hf, "8bit-g32"), "SmolLM2-135M-Instruct-8bit-g32");
    }
}
