/** Fit badges and memory bars: how the estimator's verdicts are shown and kept live. */
import type { FitReport, FitVerdict, MachineMemory, MemoryBreakdown } from "./bindings";

/** What a badge shows for a verdict. */
export type Badge = { label: string; tone: "ok" | "warn" | "bad"; title: string };

const LABELS: Record<FitVerdict, { label: string; tone: Badge["tone"] }> = {
  fits: { label: "Fits", tone: "ok" },
  tight: { label: "Tight", tone: "warn" },
  wont_fit: { label: "Won't fit", tone: "bad" },
};

/** The badge for a fit report; the title is the estimator's reason. */
export function badgeFor(fit: FitReport): Badge {
  return { ...LABELS[fit.verdict], title: fit.reason };
}

/** Bytes a model needs on top of what is already in use. */
export function neededBytes(b: MemoryBreakdown): number {
  return b.weightsBytes + b.kvCacheBytes + b.overheadBytes;
}

/**
 * The verdict against a fresh memory sample: the estimator's needs stay, what is already in use
 * comes from the live gauge. Fits when the model leaves `headroomBytes` free, tight when it fits
 * only by eating into that headroom, won't fit beyond the budget.
 */
export function reassess(fit: FitReport, memory: MachineMemory | null, headroomBytes: number): FitReport {
  if (!memory) return fit;
  const budget = memory.gpuLimitBytes ?? memory.totalBytes;
  const inUse = Math.min(memory.usedBytes, budget);
  const breakdown: MemoryBreakdown = { ...fit.breakdown, inUseBytes: inUse, budgetBytes: budget };
  const headroom = budget - inUse - neededBytes(breakdown);
  const verdict: FitVerdict = headroom >= headroomBytes ? "fits" : headroom >= 0 ? "tight" : "wont_fit";
  return { ...fit, verdict, headroomBytes: headroom, breakdown };
}

/** One coloured part of a memory bar; `fraction` is of the bar's full width. */
export type Segment = { key: "inUse" | "weights" | "kv" | "overhead"; label: string; bytes: number; fraction: number };

/** A memory bar's parts, scaled so that the budget or the total need (if larger) fills the bar. */
export function memorySegments(b: MemoryBreakdown): { segments: Segment[]; overflow: boolean; budgetFraction: number } {
  const parts: [Segment["key"], string, number][] = [
    ["inUse", "In use", b.inUseBytes],
    ["weights", "Weights", b.weightsBytes],
    ["kv", "KV cache", b.kvCacheBytes],
    ["overhead", "Overhead", b.overheadBytes],
  ];
  const total = parts.reduce((a, [, , v]) => a + Math.max(0, v), 0);
  const scale = Math.max(total, b.budgetBytes, 1);
  return {
    segments: parts.map(([key, label, bytes]) => ({ key, label, bytes, fraction: Math.max(0, bytes) / scale })),
    overflow: total > b.budgetBytes,
    budgetFraction: b.budgetBytes / scale,
  };
}

/** Parameter-size buckets for the catalog filter. */
export type SizeBucket = "all" | "small" | "medium" | "large";

/** small < 4B ≤ medium < 20B ≤ large. */
export function sizeBucket(paramsB: number): Exclude<SizeBucket, "all"> {
  return paramsB < 4 ? "small" : paramsB < 20 ? "medium" : "large";
}
