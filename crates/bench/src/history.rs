//! Benchmark history in SQLite: every run with its machine, versions, settings and samples,
//! and run-against-run comparison.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{
    error::{BenchError, Result},
    record::BenchRun,
};

/// The history database.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

/// One line of the history list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Row id.
    pub id: i64,
    /// When it ran (ISO 8601 UTC).
    pub test_time: String,
    /// `quick` or `full`.
    pub mode: String,
    /// CPU or chip.
    pub cpu: String,
    /// Models that ran.
    pub models: Vec<String>,
}

/// One test of one model in two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Model name.
    pub model: String,
    /// Test label.
    pub test: String,
    /// Mean t/s in the first run.
    pub before_ts: f64,
    /// Mean t/s in the second run.
    pub after_ts: f64,
    /// after ÷ before.
    pub ratio: f64,
}

/// One stored sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSample {
    /// Model name (or the batch-scaling model).
    pub model: String,
    /// Test label.
    pub test: String,
    /// Repetition, from 0.
    pub repetition: usize,
    /// Tokens per second.
    pub ts: f64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    test_time TEXT NOT NULL,
    started_unix INTEGER NOT NULL,
    mode TEXT NOT NULL,
    cpu TEXT NOT NULL,
    machine TEXT NOT NULL,
    versions TEXT NOT NULL,
    settings TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    test TEXT NOT NULL,
    repetition INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_run ON samples(run_id);
";

impl History {
    /// `bench.sqlite` in Minibar's data folder (`MINIBAR_HOME`).
    pub fn default_path() -> PathBuf {
        minibar_hub::library::minibar_home().join("bench.sqlite")
    }

    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| BenchError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let sql = |source| BenchError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    fn sql(&self, source: rusqlite::Error) -> BenchError {
        BenchError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Saves `run` with every sample, sets its `id` and returns it.
    pub fn save(&mut self, run: &mut BenchRun) -> Result<i64> {
        let machine = to_json(&run.machine)?;
        let versions = to_json(&run.versions)?;
        let settings = to_json(&run.settings)?;
        let mode = serde_json::to_value(run.settings.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let tx = self.conn.transaction().map_err(|e| BenchError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let result = (|| -> rusqlite::Result<i64> {
            tx.execute(
                "INSERT INTO runs (test_time, started_unix, mode, cpu, machine, versions, settings, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '')",
                params![run.test_time, run.started_unix as i64, mode, run.machine.cpu, machine, versions, settings],
            )?;
            let id = tx.last_insert_rowid();
            let mut insert = tx.prepare("INSERT INTO samples (run_id, model, test, repetition, ts) VALUES (?1, ?2, ?3, ?4, ?5)")?;
            for m in &run.models {
                for t in &m.tests {
                    for (i, ts) in t.ts.samples.iter().enumerate() {
                        insert.execute(params![id, m.model, t.test, i as i64, ts])?;
                    }
                }
            }
            if let Some(b) = &run.batch {
                for p in &b.points {
                    for (i, ts) in p.total_tps.samples.iter().enumerate() {
                        insert.execute(params![
                            id,
                            b.model,
                            format!("batch {}", p.batch),
                            i as i64,
                            ts
                        ])?;
                    }
                }
            }
            Ok(id)
        })();
        let id = result.map_err(|e| BenchError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        run.id = Some(id);
        let record = serde_json::to_string(run).map_err(|e| BenchError::Format(e.to_string()))?;
        tx.execute(
            "UPDATE runs SET record = ?1 WHERE id = ?2",
            params![record, id],
        )
        .and_then(|_| tx.commit())
        .map_err(|e| BenchError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        Ok(id)
    }

    /// Every run, newest first.
    pub fn list(&self) -> Result<Vec<RunSummary>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, test_time, mode, cpu, record FROM runs ORDER BY id DESC")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, test_time, mode, cpu, record) = row.map_err(|e| self.sql(e))?;
            let models = serde_json::from_str::<BenchRun>(&record)
                .map(|r| r.models.into_iter().map(|m| m.model).collect())
                .unwrap_or_default();
            out.push(RunSummary {
                id,
                test_time,
                mode,
                cpu,
                models,
            });
        }
        Ok(out)
    }

    /// The run with this id, if any.
    pub fn load(&self, id: i64) -> Result<Option<BenchRun>> {
        let record: Option<String> = self
            .conn
            .query_row("SELECT record FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql(e))?;
        record
            .map(|r| {
                serde_json::from_str(&r).map_err(|e| BenchError::Format(format!("run {id}: {e}")))
            })
            .transpose()
    }

    /// The newest run, if any.
    pub fn latest(&self) -> Result<Option<BenchRun>> {
        match self.list()?.first() {
            Some(s) => self.load(s.id),
            None => Ok(None),
        }
    }

    /// The stored samples of a run, in insertion order.
    pub fn samples(&self, id: i64) -> Result<Vec<StoredSample>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT model, test, repetition, ts FROM samples WHERE run_id = ?1 ORDER BY rowid",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(StoredSample {
                    model: r.get(0)?,
                    test: r.get(1)?,
                    repetition: r.get::<_, i64>(2)? as usize,
                    ts: r.get(3)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.sql(e))
    }

    /// Deletes a run and its samples; returns whether it existed.
    pub fn delete(&mut self, id: i64) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM runs WHERE id = ?1", [id])
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// Mean t/s of each test both runs share, `after` against `before`.
    pub fn compare(&self, before: i64, after: i64) -> Result<Vec<Comparison>> {
        let missing = |id| BenchError::Invalid(format!("no benchmark run {id} in the history"));
        let a = self.load(before)?.ok_or_else(|| missing(before))?;
        let b = self.load(after)?.ok_or_else(|| missing(after))?;
        Ok(compare_runs(&a, &b))
    }
}

/// Mean t/s of each test both runs share (models by name, batch sizes as `batch N`).
pub fn compare_runs(before: &BenchRun, after: &BenchRun) -> Vec<Comparison> {
    let means = |run: &BenchRun| -> Vec<(String, String, f64)> {
        let mut v: Vec<_> = run
            .models
            .iter()
            .flat_map(|m| {
                m.tests
                    .iter()
                    .map(|t| (m.model.clone(), t.test.clone(), t.ts.mean))
            })
            .collect();
        if let Some(b) = &run.batch {
            v.extend(b.points.iter().map(|p| {
                (
                    b.model.clone(),
                    format!("batch {}", p.batch),
                    p.total_tps.mean,
                )
            }));
        }
        v
    };
    let old = means(before);
    means(after)
        .into_iter()
        .filter_map(|(model, test, after_ts)| {
            let before_ts = old.iter().find(|(m, t, _)| *m == model && *t == test)?.2;
            Some(Comparison {
                ratio: if before_ts > 0.0 {
                    after_ts / before_ts
                } else {
                    0.0
                },
                model,
                test,
                before_ts,
                after_ts,
            })
        })
        .collect()
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| BenchError::Format(e.to_string()))
}
