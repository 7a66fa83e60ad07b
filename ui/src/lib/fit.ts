/** Fit badges and memory bars: how Rust's fit verdicts are shown (never re-judged here). */
import type { FitReport, FitVerdict, MemoryBreakdown, WhatIfCell } from "./bindings";

/** What a badge shows for a verdict. */
export type Badge = { label: string; tone: "ok" | "warn" | "bad"; title: string };

const LABELS: Record<FitVerdict, { label: string; tone: Badge["tone"] }> = {
  fits: { label: "Fits", tone: "ok" },
  tight: { label: "Tight", tone: "warn" },
  wont_fit: { label: "Won't fit", tone: "bad" },
};

/** Formats bytes as the badge's title does (decimal GB, MB below 1 GB). */
function size(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.round(bytes / 1e6)} MB`;
}

/**
 * The badge for a fit report, exactly as Rust decided it (minibar-fit's `assess`): the UI does
 * not judge again. The title is the reason, then the thresholds the verdict was judged by.
 */
export function badgeFor(fit: FitReport): Badge {
  // Won't fit here, fits the cluster that is up: Rust's `fits_across` said so.
  if (fit.across) return { label: `Fits across ${fit.across.nodes} nodes`, tone: "ok", title: `${fit.across.reason}\nOn this Mac: ${fit.reason}` };
  const t = fit.thresholds;
  const kept = t.headroomBytes > 0 ? `${Math.round(t.comfortMargin * 100)}% of it or ${size(t.headroomBytes)}, whichever is more` : `${Math.round(t.comfortMargin * 100)}% of it`;
  const rule = `Fits up to ${size(fit.comfortableBytes)} (of ${size(fit.usableBytes)} usable, keeping ${kept} free); tight up to ${size(fit.usableBytes)}.`;
  return { ...LABELS[fit.verdict], title: `${fit.reason}\n${rule}` };
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

/** Tokens as a table shows them: 4096 → "4K". */
function tokens(n: number): string {
  return n >= 1024 ? `${Math.floor(n / 1024)}K` : `${n}`;
}

/** A what-if cell's text and tone, from the verdict Rust sent: "fits 32K", "tight 4K", "no". */
export function whatIfCell(cell: WhatIfCell): { text: string; tone: Badge["tone"] } {
  const tone = LABELS[cell.verdict].tone;
  if (cell.verdict === "wont_fit") return { text: "no", tone };
  return { text: `${cell.verdict === "fits" ? "fits" : "tight"} ${tokens(cell.maxContext)}`, tone };
}
