/** Human formatting of sizes, rates, durations and times, in macOS's decimal units. */

const UNITS = ["B", "kB", "MB", "GB", "TB"];

/** 98362432 → "98.4 MB" (decimal units, as Finder shows them). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "—";
  const sign = bytes < 0 ? "−" : "";
  let n = Math.abs(bytes);
  let u = 0;
  while (n >= 1000 && u < UNITS.length - 1) {
    n /= 1000;
    u++;
  }
  if (u === 0) return `${sign}${Math.round(n)} B`;
  // Rounding can carry into the next unit (999.96 MB → "1000.0 MB"): step up instead.
  if (Number(n.toFixed(1)) >= 1000 && u < UNITS.length - 1) {
    n /= 1000;
    u++;
  }
  const digits = n < 100 ? 1 : 0;
  return `${sign}${n.toFixed(digits)} ${UNITS[u]}`;
}

/** Bytes per second → "12.3 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return "—";
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Seconds left → "45 s", "3 min 12 s", "1 h 05 min"; null or nonsense → "—". */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    const r = s % 60;
    return r ? `${m} min ${r} s` : `${m} min`;
  }
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h} h ${String(m).padStart(2, "0")} min`;
}

/** The ETA of a transfer from its remaining bytes and speed; null when it cannot be known. */
export function etaSeconds(remainingBytes: number, bytesPerSecond: number): number | null {
  if (remainingBytes <= 0) return 0;
  if (!(bytesPerSecond > 0)) return null;
  return remainingBytes / bytesPerSecond;
}

/** Milliseconds → "320 ms" or "1.24 s". */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** Tokens per second → "42.1 tok/s" (no decimal from 100 up). */
export function formatTps(tps: number): string {
  if (!Number.isFinite(tps) || tps < 0) return "—";
  return `${tps < 100 ? tps.toFixed(1) : Math.round(tps)} tok/s`;
}

/** 0.4567 → "46%". */
export function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return "—";
  return `${Math.round(fraction * 100)}%`;
}

/** A download's total, or "unknown size" while the hub has not said (null): never a made-up 0. */
export function formatTotal(total: number | null): string {
  return total == null ? "unknown size" : formatBytes(total);
}

/** A download's share done, or "size unknown" while its total is unknown (null) or 0. */
export function formatDownloadPercent(done: number, total: number | null): string {
  return total ? formatPercent(done / total) : "size unknown";
}

/** Parameter count in billions → "135M", "7B", "1.5B". */
export function formatParams(billions: number): string {
  if (billions < 1) return `${Math.round(billions * 1000)}M`;
  return `${Number(billions.toFixed(1))}B`;
}

/** A one-line preview of a message without Markdown marks: "**Hi** `x`" → "Hi x". */
export function plainPreview(text: string): string {
  return text
    .replace(/```[a-z]*\n?/gi, "")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/[*_`#>|~]+/g, "")
    .replace(/\s+/g, " ")
    .trim();
}

/** A timestamp for the session list: "Just now", "5 min ago", "14:05", "Yesterday", "3 Nov". */
export function formatWhen(ms: number, now: number = Date.now()): string {
  const diff = now - ms;
  if (diff < 60_000) return "Just now";
  if (diff < 3_600_000) return `${Math.floor(diff / 60_000)} min ago`;
  const d = new Date(ms);
  const today = new Date(now);
  const sameDay = d.toDateString() === today.toDateString();
  if (sameDay) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const yesterday = new Date(now - 86_400_000);
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], { day: "numeric", month: "short" });
}
