/**
 * Shapes benchmark records into the series the charts draw. Pure functions, so what a chart
 * shows is tested without a canvas; `Chart.svelte` turns these into Chart.js configs.
 */
import type { BenchProgress, BenchRun, BenchRunSummary, ReferenceFigure } from "./bindings";

/** A bar chart: one label per bar group, one series per metric. */
export type BarData = { labels: string[]; series: { name: string; values: number[]; errors?: number[] }[] };

/** A line chart over numeric x. */
export type LineData = { series: { name: string; points: { x: number; y: number }[] }[] };

/** The label of a model in charts: name (without "Instruct", which every chat model is) and quantization. */
function modelLabel(name: string, variantId: string): string {
  const quant = variantId.split("@")[1];
  const short = name.replace(/ Instruct$/, "");
  return quant ? `${short} ${quant}` : short;
}

/** pp512 and tg128 per model (mean, with the standard deviation as the error). */
export function speedBars(run: BenchRun): BarData {
  return {
    labels: run.models.map((m) => modelLabel(m.name, m.variantId)),
    series: [
      { name: "pp512", values: run.models.map((m) => m.pp512.mean), errors: run.models.map((m) => m.pp512.std) },
      { name: "tg128", values: run.models.map((m) => m.tg128.mean), errors: run.models.map((m) => m.tg128.std) },
    ],
  };
}

/** The live line under the progress bar: the step, then the latest measurement. */
export function progressLine(p: BenchProgress | null): string {
  if (!p) return "Starting…";
  const step = `${Math.min(p.stepIndex + 1, p.stepCount)}/${p.stepCount} · ${p.step}`;
  const s = p.lastSample;
  return s ? `${step} · last ${s.test}: ${s.tokensPerSecond.toFixed(1)} tok/s` : step;
}

/** Where the published figures come from, each source once, in first-seen order. */
export function referenceSources(refs: ReferenceFigure[]): { title: string; url: string }[] {
  const seen = new Map<string, string>();
  for (const r of refs) if (!seen.has(r.source)) seen.set(r.source, r.url);
  return [...seen].map(([title, url]) => ({ title, url }));
}

/** Batch scaling: total throughput against batch size. */
export function batchThroughput(run: BenchRun): LineData {
  const pts = [...run.batch].sort((a, b) => a.batch - b.batch);
  return { series: [{ name: "Total tok/s", points: pts.map((p) => ({ x: p.batch, y: p.totalTps })) }] };
}

/**
 * Batch scaling as work against time: the time ratio per batch beside the work ratio (the
 * diagonal a machine that gained nothing from batching would follow).
 */
export function batchRatios(run: BenchRun): LineData {
  const pts = [...run.batch].sort((a, b) => a.batch - b.batch);
  return {
    series: [
      { name: "Time ratio", points: pts.map((p) => ({ x: p.workRatio, y: p.timeRatio })) },
      { name: "Work ratio (no gain)", points: pts.map((p) => ({ x: p.workRatio, y: p.workRatio })) },
    ],
  };
}

/** The headline of batch scaling: "32× the work in 9.1× the time"; null without batch data. */
export function batchHeadline(run: BenchRun): string | null {
  const last = [...run.batch].sort((a, b) => b.batch - a.batch)[0];
  if (!last || last.batch <= 1) return null;
  return `${last.workRatio}× the work in ${last.timeRatio.toFixed(1)}× the time`;
}

/** Achieved generation speed against the bandwidth roofline, per model. */
export function rooflineBars(run: BenchRun): BarData {
  return {
    labels: run.models.map((m) => modelLabel(m.name, m.variantId)),
    series: [
      { name: "Achieved tg128", values: run.models.map((m) => m.tg128.mean) },
      { name: "Roofline", values: run.models.map((m) => m.rooflineTps) },
    ],
  };
}

/** The default model's pp512 and tg128 over time, oldest first. */
export function historyLines(runs: BenchRunSummary[]): LineData {
  const sorted = [...runs].sort((a, b) => a.startedAtMs - b.startedAtMs);
  return {
    series: [
      { name: "pp512", points: sorted.map((r) => ({ x: r.startedAtMs, y: r.pp512 })) },
      { name: "tg128", points: sorted.map((r) => ({ x: r.startedAtMs, y: r.tg128 })) },
    ],
  };
}

/**
 * This run beside published figures for one metric: the references (their own model named in the
 * label, since they were measured on other models) then this machine's default model, tagged.
 */
export function referenceBars(run: BenchRun, refs: ReferenceFigure[], metric: "tg128" | "pp512" = "tg128"): BarData & { mine: number } {
  const chosen = refs.filter((r) => r.metric === metric).sort((a, b) => a.tokensPerSecond - b.tokensPerSecond);
  const def = run.models.find((m) => m.variantId === run.defaultModel) ?? run.models[0];
  // Two lines per bar (the chart splits at " · "), short enough for the axis.
  const labels = chosen.map((r) => `${r.chip} (${r.engine}) · ${r.model} ${r.quant}`);
  const values = chosen.map((r) => r.tokensPerSecond);
  if (def) {
    labels.push(`This machine · ${modelLabel(def.name, def.variantId)}`);
    values.push(def[metric].mean);
  }
  return { labels, series: [{ name: metric, values }], mine: def ? labels.length - 1 : -1 };
}

/** One model's speeds in a run against the same model in an earlier run: after ÷ before. */
export type Comparison = { variantId: string; pp512: number; tg128: number };

/** The models both runs measured, each with its speed ratios (llama-bench's compare, per model). */
export function compareRuns(before: BenchRun, after: BenchRun): Comparison[] {
  const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);
  return after.models.flatMap((m) => {
    const old = before.models.find((o) => o.variantId === m.variantId);
    return old ? [{ variantId: m.variantId, pp512: ratio(m.pp512.mean, old.pp512.mean), tg128: ratio(m.tg128.mean, old.tg128.mean) }] : [];
  });
}

/** A ratio as the table shows it: `×1.05`. */
export function formatRatio(r: number): string {
  return `×${r.toFixed(2)}`;
}
