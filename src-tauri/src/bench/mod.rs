//! The benchmark from the app: minibar-bench's suite run as a task on the engine thread (so it
//! never shares the machine with a chat), its progress sent as events, its runs kept in the
//! history database `minibar bench` writes too (`minibar_bench::History::default_path()`), so
//! runs from either show in both.

pub mod records;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use minibar_bench::{run_suite, CancelToken, History, Progress, SuiteConfig};
use minibar_hub::library::Use;
use tauri::{AppHandle, Runtime};
use tauri_specta::Event;

use crate::models::library::{self, Installed};
use crate::settings_store;
use crate::state::AppState;
use crate::types::{
    AppError, AppResult, BenchExportFormat, BenchFinished, BenchMode, BenchProgress, BenchRun,
    BenchRunSummary, BenchSample, BenchStatus, ReferenceFigure,
};

use records::{app_error, ByPath, Identify};

/// The run in flight: the id `start_benchmark` returned and what stops it.
struct Active {
    run_id: String,
    cancel: CancelToken,
}

/// The benchmark's shared state: its history and the run in flight (one at a time).
pub struct Bench {
    history: Mutex<History>,
    active: Mutex<Option<Active>>,
}

fn poisoned() -> AppError {
    AppError::io("the benchmark history is unavailable after an earlier failure")
}

impl Bench {
    /// Opens (creating if needed) the history database at `path`: the CLI's
    /// ([`History::default_path`], under `MINIBAR_HOME`) in the app.
    pub fn open(path: &Path) -> AppResult<Bench> {
        let history = History::open(path).map_err(app_error)?;
        Ok(Bench {
            history: Mutex::new(history),
            active: Mutex::new(None),
        })
    }

    /// Every stored run, oldest first.
    pub fn list(&self, who: &dyn Identify) -> AppResult<Vec<BenchRunSummary>> {
        let h = self.history.lock().map_err(|_| poisoned())?;
        let mut out = Vec::new();
        // The history lists newest first; each row needs its record for the default model's
        // figures.
        for row in h.list().map_err(app_error)?.into_iter().rev() {
            if let Some(r) = h.load(row.id).map_err(app_error)? {
                out.push(records::summary(&records::run(&r, who)));
            }
        }
        Ok(out)
    }

    fn load(&self, id: &str) -> AppResult<minibar_bench::BenchRun> {
        let missing = || AppError::not_found(format!("no benchmark run {id}"));
        let key: i64 = id.parse().map_err(|_| missing())?;
        let h = self.history.lock().map_err(|_| poisoned())?;
        h.load(key).map_err(app_error)?.ok_or_else(missing)
    }

    /// One stored run with every figure.
    pub fn get(&self, id: &str, who: &dyn Identify) -> AppResult<BenchRun> {
        Ok(records::run(&self.load(id)?, who))
    }

    /// A stored run in llama-bench's JSON, CSV or Markdown.
    pub fn export(&self, id: &str, format: BenchExportFormat) -> AppResult<String> {
        let run = self.load(id)?;
        match format {
            BenchExportFormat::Json => minibar_bench::export::to_json(&run).map_err(app_error),
            BenchExportFormat::Csv => minibar_bench::export::to_csv(&run).map_err(app_error),
            BenchExportFormat::Markdown => Ok(minibar_bench::export::to_markdown(&run)),
        }
    }

    /// Stops the run `run_id` at its next check (within one generation step).
    pub fn cancel(&self, run_id: &str) -> AppResult<()> {
        let active = self.active.lock().map_err(|_| poisoned())?;
        match active.as_ref().filter(|a| a.run_id == run_id) {
            Some(a) => {
                a.cancel.cancel();
                Ok(())
            }
            None => Err(AppError::not_found(format!(
                "no benchmark run {run_id} is running"
            ))),
        }
    }

    fn finish(&self) {
        if let Ok(mut a) = self.active.lock() {
            *a = None;
        }
    }
}

/// Published figures for Apple chips.
pub fn reference() -> AppResult<Vec<ReferenceFigure>> {
    Ok(records::references(
        &minibar_bench::apple_reference().map_err(app_error)?,
    ))
}

/// The product's default model (SmolLM2-135M Instruct, Q4_1), benchmarked when the user has
/// saved no default of their own.
pub const DEFAULT_VARIANT: &str = "smollm2-135m@q4_1";

/// The models a run measures, default first: quick runs the default model alone, full runs
/// `minibar_bench::ladder` (the default, then every other installed model from the smallest
/// up; the suite skips those that would not fit), the ladder `minibar bench --full` runs. The
/// default is the saved default model when installed, else [`DEFAULT_VARIANT`], else the
/// smallest installed model.
pub fn ladder(
    installed: &[Installed],
    default_model: Option<&str>,
    mode: BenchMode,
) -> AppResult<Vec<Installed>> {
    let find = |id: &str| installed.iter().find(|i| i.variant_id == id);
    let default = default_model
        .and_then(find)
        .or_else(|| find(DEFAULT_VARIANT))
        .or_else(|| installed.iter().min_by_key(|i| i.size_bytes))
        .ok_or_else(|| {
            AppError::new(
                crate::types::AppErrorKind::NoModel,
                "No model is installed to benchmark: download one in Models.",
            )
        })?;
    if mode == BenchMode::Quick {
        return Ok(vec![default.clone()]);
    }
    let sizes: Vec<minibar_bench::Installed> = installed
        .iter()
        .map(|i| minibar_bench::Installed {
            path: i.path.clone(),
            size_bytes: i.size_bytes,
        })
        .collect();
    // The ladder hands back the paths it was given, so each maps back to its model.
    Ok(minibar_bench::ladder(&default.path, &sizes)
        .iter()
        .filter_map(|p| {
            if p == &default.path {
                Some(default.clone())
            } else {
                installed.iter().find(|i| &i.path == p).cloned()
            }
        })
        .collect())
}

/// Identifies the models of stored runs among what is installed now.
pub fn with_names<T>(state: &AppState, f: impl FnOnce(&dyn Identify) -> T) -> AppResult<T> {
    let installed = library::installed(&state.catalog, &state.library())?;
    Ok(f(&ByPath {
        installed: &installed,
        catalog: &state.catalog,
    }))
}

/// The suite's settings for a mode.
fn config(mode: BenchMode, models: Vec<PathBuf>) -> SuiteConfig {
    match mode {
        BenchMode::Quick => SuiteConfig::quick(models),
        BenchMode::Full => SuiteConfig::full(models),
    }
}

/// Turns the suite's progress into `bench-progress` events, each carrying the step and the
/// latest measurement so far.
struct Reporter<R: Runtime> {
    app: AppHandle<R>,
    run_id: String,
    step: String,
    done: usize,
    total: usize,
    last: Option<BenchSample>,
}

impl<R: Runtime> Reporter<R> {
    fn on(&mut self, p: Progress) {
        match p {
            Progress::Step { done, total, label } => {
                (self.done, self.total, self.step) = (done, total, label);
            }
            Progress::Sample {
                model, test, ts, ..
            } => {
                self.last = Some(BenchSample {
                    model,
                    test,
                    tokens_per_second: ts,
                });
            }
            Progress::Skipped { model, reason } => {
                self.step = format!("skipped {model}: {reason}");
            }
            Progress::Machine(_) | Progress::ModelDone(_) | Progress::BatchDone(_) => return,
        }
        let _ = BenchProgress {
            run_id: self.run_id.clone(),
            step: self.step.clone(),
            step_index: self.done as u32,
            step_count: self.total.max(1) as u32,
            fraction: self.done as f64 / self.total.max(1) as f64,
            last_sample: self.last.clone(),
        }
        .emit(&self.app);
    }
}

/// Starts a run on the engine thread and returns its id; `bench-progress` follows, then
/// exactly one `bench-finished`.
pub fn start<R: Runtime>(
    app: AppHandle<R>,
    state: &AppState,
    mode: BenchMode,
) -> AppResult<String> {
    let settings = settings_store::load(&app)?;
    let installed = library::installed(&state.catalog, &state.library())?;
    let ladder = ladder(&installed, settings.default_model.as_deref(), mode)?;
    let run_id = format!("run-{}", uuid::Uuid::new_v4());
    let cancel = CancelToken::new();
    {
        let mut active = state.bench.active.lock().map_err(|_| poisoned())?;
        if active.is_some() {
            return Err(AppError::invalid(
                "A benchmark is already running: wait for it or cancel it.",
            ));
        }
        *active = Some(Active {
            run_id: run_id.clone(),
            cancel: cancel.clone(),
        });
    }
    let bench = state.bench.clone();
    let catalog = state.catalog.clone();
    let suite = config(mode, ladder.iter().map(|i| i.path.clone()).collect());
    let id = run_id.clone();
    // Held until the run ends: deleting a model it runs is refused with the reason.
    let in_use = crate::models::library::hold(&state.library(), &suite.models, Use::Benchmark);
    let task = Box::new(move |engine: &mut dyn crate::engine_worker::ChatEngine| {
        let _in_use = in_use;
        // The chat model's memory and threads would skew every figure.
        engine.unload();
        let mut reporter = Reporter {
            app: app.clone(),
            run_id: id.clone(),
            step: "starting".into(),
            done: 0,
            total: 1,
            last: None,
        };
        let work = || {
            run_suite(&suite, &cancel, &mut |p| reporter.on(p))
                .map_err(app_error)
                .and_then(|mut run| {
                    if run.models.is_empty() {
                        return Err(AppError::engine(format!(
                            "No model could be benchmarked: {}",
                            run.skipped.join("; ")
                        )));
                    }
                    let mut h = bench.history.lock().map_err(|_| poisoned())?;
                    h.save(&mut run).map_err(app_error)?;
                    Ok(records::run(
                        &run,
                        &ByPath {
                            installed: &ladder,
                            catalog: &catalog,
                        },
                    ))
                })
        };
        // A panic must still end the run (and free the slot), not the engine thread.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
                Err(AppError::engine(
                    "The benchmark crashed; see the app's log.",
                ))
            });
        bench.finish();
        let event = match outcome {
            Ok(run) => BenchFinished {
                run_id: id,
                status: BenchStatus::Done,
                run: Some(run),
                error: None,
            },
            Err(e) if e.kind == crate::types::AppErrorKind::Cancelled => BenchFinished {
                run_id: id,
                status: BenchStatus::Cancelled,
                run: None,
                error: None,
            },
            Err(e) => BenchFinished {
                run_id: id,
                status: BenchStatus::Failed,
                run: None,
                error: Some(e),
            },
        };
        let _ = event.emit(&app);
    });
    if let Err(e) = state.engine.run_task(task) {
        state.bench.finish();
        return Err(e);
    }
    Ok(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str, size: u64) -> Installed {
        Installed {
            variant_id: id.into(),
            model_id: id.split('@').next().unwrap().into(),
            name: id.into(),
            quant: "q".into(),
            path: PathBuf::from(format!("/m/{id}")),
            size_bytes: size,
            bits_per_weight: None,
            library_name: None,
            unverified: Vec::new(),
        }
    }

    #[test]
    fn the_ladder_starts_with_the_default_model() {
        let installed = [model("big@4bit", 900), model("small@q4_1", 100)];
        let quick = ladder(&installed, None, BenchMode::Quick).unwrap();
        assert_eq!(quick.len(), 1);
        assert_eq!(
            quick[0].variant_id, "small@q4_1",
            "smallest when none is saved"
        );
        let full = ladder(&installed, Some("big@4bit"), BenchMode::Full).unwrap();
        let ids: Vec<_> = full.iter().map(|i| i.variant_id.as_str()).collect();
        assert_eq!(ids, ["big@4bit", "small@q4_1"]);
        let gone = ladder(&installed, Some("deleted@8bit"), BenchMode::Quick).unwrap();
        assert_eq!(gone[0].variant_id, "small@q4_1");
        let with_default = [model("tiny@4bit", 10), model(DEFAULT_VARIANT, 100)];
        let quick = ladder(&with_default, None, BenchMode::Quick).unwrap();
        assert_eq!(
            quick[0].variant_id, DEFAULT_VARIANT,
            "the product's default first"
        );
        assert!(ladder(&[], None, BenchMode::Quick).is_err());
        let three = [
            model("big@4bit", 900),
            model("mid@4bit", 500),
            model(DEFAULT_VARIANT, 100),
            model("tiny@4bit", 10),
        ];
        let full = ladder(&three, Some("mid@4bit"), BenchMode::Full).unwrap();
        let ids: Vec<_> = full.iter().map(|i| i.variant_id.as_str()).collect();
        assert_eq!(
            ids,
            ["mid@4bit", "tiny@4bit", DEFAULT_VARIANT, "big@4bit"],
            "minibar-bench's ladder: the default, then smallest up"
        );
    }
}
