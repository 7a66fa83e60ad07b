import { describe, expect, test } from "vitest";
import type { BenchRun, BenchRunSummary, ReferenceFigure } from "../../src/lib/bindings";
import { batchHeadline, batchRatios, batchThroughput, compareRuns, formatRatio, historyLines, progressLine, referenceBars, referenceSources, rooflineBars, speedBars } from "../../src/lib/charts";

const stat = (mean: number, std = 1) => ({ mean, std, n: 5 });
const run: BenchRun = {
  id: "b1",
  startedAtMs: 1000,
  mode: "quick",
  machine: { chip: "M4 Max", cpuCores: 16, physicalCores: 16, gpuCores: 40, memoryBytes: 64e9, os: "macOS 15", mlxVersion: "0.32.2", backend: "metal", bandwidthGBs: 546 },
  minibarVersion: "0.1.0",
  repetitions: 5,
  defaultModel: "qwen3-4b@4bit",
  batchGenTokens: 128,
  skipped: [],
  models: [
    { variantId: "smol@q4_1", name: "SmolLM2", modelType: "llama", params: 1.35e8, weightBytes: 5.4e8, dequantized: true, bitsPerWeight: 5, pp512: stat(5000, 50), tg128: stat(400, 4), tgDepth4096: null, ttftMs: stat(100), peakMemoryBytes: 2e8, rooflineTps: 5000, efficiency: 0.08 },
    { variantId: "qwen3-4b@4bit", name: "Qwen3 4B", modelType: "qwen3", params: 4e9, weightBytes: 2.25e9, dequantized: false, bitsPerWeight: 4.5, pp512: stat(1600, 20), tg128: stat(134.5, 2), tgDepth4096: stat(110), ttftMs: stat(320), peakMemoryBytes: 3.35e9, rooflineTps: 240, efficiency: 0.56 },
  ],
  batch: [
    { batch: 4, totalTps: 400, wallSeconds: 1.3, timeRatio: 1.3, workRatio: 4 },
    { batch: 1, totalTps: 133, wallSeconds: 1, timeRatio: 1, workRatio: 1 },
    { batch: 32, totalTps: 810, wallSeconds: 9.1, timeRatio: 9.1, workRatio: 32 },
  ],
};

describe("chart data", () => {
  test("speed bars carry means and deviations per model", () => {
    const d = speedBars(run);
    expect(d.labels).toEqual(["SmolLM2 q4_1", "Qwen3 4B 4bit"]);
    expect(speedBars({ ...run, models: [{ ...run.models[0], name: "SmolLM2 135M Instruct" }] }).labels).toEqual(["SmolLM2 135M q4_1"]);
    expect(d.series.map((s) => s.name)).toEqual(["pp512", "tg128"]);
    expect(d.series[1].values).toEqual([400, 134.5]);
    expect(d.series[0].errors).toEqual([50, 20]);
  });
  test("batch curves are sorted by batch size", () => {
    expect(batchThroughput(run).series[0].points.map((p) => p.x)).toEqual([1, 4, 32]);
    const ratios = batchRatios(run);
    expect(ratios.series[0].points).toEqual([
      { x: 1, y: 1 },
      { x: 4, y: 1.3 },
      { x: 32, y: 9.1 },
    ]);
    expect(ratios.series[1].points.every((p) => p.x === p.y)).toBe(true);
  });
  test("batch headline states the largest batch", () => {
    expect(batchHeadline(run)).toBe("32× the work in 9.1× the time");
    expect(batchHeadline({ ...run, batch: [] })).toBeNull();
  });
  test("roofline bars pair achieved with the bound", () => {
    expect(rooflineBars(run).series.map((s) => s.values)).toEqual([
      [400, 134.5],
      [5000, 240],
    ]);
  });
  test("history is ordered oldest first", () => {
    const runs: BenchRunSummary[] = [
      { id: "2", startedAtMs: 200, mode: "quick", chip: "x", defaultModel: "m", pp512: 2, tg128: 20 },
      { id: "1", startedAtMs: 100, mode: "full", chip: "x", defaultModel: "m", pp512: 1, tg128: 10 },
    ];
    expect(historyLines(runs).series[1].points).toEqual([
      { x: 100, y: 10 },
      { x: 200, y: 20 },
    ]);
  });
  test("reference bars put this machine's default model last, named", () => {
    const src = { source: "llama.cpp #4167", url: "https://github.com/ggml-org/llama.cpp/discussions/4167" };
    const refs: ReferenceFigure[] = [
      { chip: "M4 Max", model: "LLaMA-2 7B", quant: "Q4_0", engine: "llama.cpp", metric: "tg128", tokensPerSecond: 83.1, ...src },
      { chip: "M2", model: "LLaMA-2 7B", quant: "Q4_0", engine: "llama.cpp", metric: "tg128", tokensPerSecond: 21.9, ...src },
      { chip: "M4 Max", model: "Qwen3-4B", quant: "4-bit", engine: "mlx-lm", metric: "pp2048", tokensPerSecond: 1622, source: "mlx-lm", url: "https://x" },
    ];
    const d = referenceBars(run, refs);
    expect(d.labels).toEqual(["M2 (llama.cpp) · LLaMA-2 7B Q4_0", "M4 Max (llama.cpp) · LLaMA-2 7B Q4_0", "This machine · Qwen3 4B 4bit"]);
    expect(d.series[0].values).toEqual([21.9, 83.1, 134.5]);
    expect(d.mine).toBe(2);
    expect(referenceSources(refs)).toEqual([src.source, "mlx-lm"].map((title, i) => ({ title, url: i ? "https://x" : src.url })));
  });
  test("the progress line shows the step and the latest measurement", () => {
    expect(progressLine(null)).toBe("Starting…");
    const p = { runId: "r", step: "SmolLM2: pp512 + tg128, run 1 of 2", stepIndex: 2, stepCount: 8, fraction: 0.25, lastSample: null };
    expect(progressLine(p)).toBe("3/8 · SmolLM2: pp512 + tg128, run 1 of 2");
    expect(progressLine({ ...p, lastSample: { model: "SmolLM2", test: "tg128", tokensPerSecond: 41.234 } })).toBe(
      "3/8 · SmolLM2: pp512 + tg128, run 1 of 2 · last tg128: 41.2 tok/s",
    );
  });
  test("a run compares with an earlier one model by model", () => {
    const older: BenchRun = {
      ...run,
      id: "b0",
      models: [{ ...run.models[1], pp512: stat(800), tg128: stat(269) }],
    };
    expect(compareRuns(older, run)).toEqual([{ variantId: "qwen3-4b@4bit", pp512: 2, tg128: 0.5 }]);
    expect(compareRuns({ ...older, models: [] }, run)).toEqual([]);
    expect(formatRatio(1.049)).toBe("×1.05");
  });
});
