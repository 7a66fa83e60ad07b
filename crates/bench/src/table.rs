//! The terminal report of a run: machine, per-model tests, batch scaling, skipped models.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use crate::{
    export::{params_text, size_text},
    record::BenchRun,
};

fn right(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

/// The run as text tables, for `minibar bench`.
pub fn render(run: &BenchRun) -> String {
    let m = &run.machine;
    let mut out = format!(
        "{} · {} cores ({} physical) · {} · {} · MLX {} ({})\nmemory bandwidth {:.1} GB/s (MLX scale/add kernels) · {:?} mode, {} runs per test after 1 warm-up, synthetic tokens, EOS ignored\n",
        m.cpu,
        m.logical_cores,
        m.physical_cores,
        size_text(m.memory_bytes),
        m.os,
        m.mlx_version,
        m.backend,
        m.bandwidth_gbs,
        run.settings.mode,
        run.settings.repetitions,
    );
    if !run.models.is_empty() {
        let mut t = table(&[
            "model",
            "size",
            "params",
            "bpw",
            "backend",
            "test",
            "t/s",
            "TTFT ms",
            "peak mem",
            "roofline t/s",
            "of roofline",
        ]);
        for r in &run.models {
            for (i, test) in r.tests.iter().enumerate() {
                let first = i == 0;
                let tg = test.n_gen > 0;
                t.add_row(vec![
                    Cell::new(if first {
                        r.model.clone()
                    } else {
                        String::new()
                    }),
                    right(if first {
                        size_text(r.size_bytes)
                    } else {
                        String::new()
                    }),
                    right(if first {
                        params_text(r.params)
                    } else {
                        String::new()
                    }),
                    right(if first {
                        format!("{:.2}", r.bits_per_weight)
                    } else {
                        String::new()
                    }),
                    Cell::new(if first {
                        format!(
                            "MLX-{}{}",
                            r.backend,
                            if r.dequantized { " (dequantized)" } else { "" }
                        )
                    } else {
                        String::new()
                    }),
                    Cell::new(test.test.clone()),
                    right(format!("{:.2} ± {:.2}", test.ts.mean, test.ts.stddev)),
                    right(if first {
                        format!("{:.0} ± {:.0}", r.ttft_ms.mean, r.ttft_ms.stddev)
                    } else {
                        String::new()
                    }),
                    right(if first {
                        size_text(r.peak_memory_bytes)
                    } else {
                        String::new()
                    }),
                    right(if tg {
                        format!("{:.1}", r.roofline_tps)
                    } else {
                        String::new()
                    }),
                    right(if tg && r.roofline_tps > 0.0 {
                        format!("{:.0}%", 100.0 * test.ts.mean / r.roofline_tps)
                    } else {
                        String::new()
                    }),
                ]);
            }
        }
        out.push_str(&format!("{t}\n"));
    }
    if let Some(b) = &run.batch {
        out.push_str(&format!(
            "batch scaling, {}: {}-token prompts, {} generated tokens per sequence (decode timed)\n",
            b.model, b.n_prompt, b.n_gen
        ));
        let mut t = table(&["batch", "total t/s", "wall s", "work ×", "time ×"]);
        for p in &b.points {
            t.add_row(vec![
                right(p.batch.to_string()),
                right(format!(
                    "{:.1} ± {:.1}",
                    p.total_tps.mean, p.total_tps.stddev
                )),
                right(format!("{:.2}", p.wall_s.mean)),
                right(format!("{:.0}", p.work_ratio)),
                right(format!("{:.2}", p.time_ratio)),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    for s in &run.skipped {
        out.push_str(&format!("skipped {s}\n"));
    }
    out
}
