import { describe, expect, test } from "vitest";
import { etaSeconds, formatBytes, formatDownloadPercent, formatTotal, formatEta, formatMs, formatParams, formatPercent, formatRate, formatTps, plainPreview } from "../../src/lib/format";

describe("formatBytes", () => {
  test("uses decimal units with one decimal below 100", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1000)).toBe("1.0 kB");
    expect(formatBytes(98_362_432)).toBe("98.4 MB");
    expect(formatBytes(538e6)).toBe("538 MB");
    expect(formatBytes(24e9)).toBe("24.0 GB");
    expect(formatBytes(1.5e12)).toBe("1.5 TB");
  });
  test("carries a rounded 1000 into the next unit", () => {
    expect(formatBytes(999_960_000)).toBe("1.0 GB");
  });
  test("shows negative headroom with a minus sign", () => {
    expect(formatBytes(-2.5e9)).toBe("−2.5 GB");
  });
  test("does not print NaN", () => {
    expect(formatBytes(Number.NaN)).toBe("—");
  });
});

test("plainPreview strips Markdown marks", () => {
  expect(plainPreview("Good question. In short, **Why does** `x` [link](https://a.b)\n\n1. *one*")).toBe("Good question. In short, Why does x link 1. one");
  expect(plainPreview("```rust\nfn main() {}")).toBe("fn main() {}");
});

describe("rates and durations", () => {
  test("formatRate", () => {
    expect(formatRate(12_300_000)).toBe("12.3 MB/s");
    expect(formatRate(0)).toBe("—");
  });
  test("formatEta", () => {
    expect(formatEta(null)).toBe("—");
    expect(formatEta(0)).toBe("0 s");
    expect(formatEta(44.6)).toBe("45 s");
    expect(formatEta(192)).toBe("3 min 12 s");
    expect(formatEta(180)).toBe("3 min");
    expect(formatEta(3900)).toBe("1 h 05 min");
    expect(formatEta(-1)).toBe("—");
  });
  test("etaSeconds is unknown without speed and zero when done", () => {
    expect(etaSeconds(100, 0)).toBeNull();
    expect(etaSeconds(0, 0)).toBe(0);
    expect(etaSeconds(1000, 250)).toBe(4);
  });
  test("formatMs", () => {
    expect(formatMs(210.4)).toBe("210 ms");
    expect(formatMs(1240)).toBe("1.24 s");
    expect(formatMs(12_345)).toBe("12.3 s");
  });
  test("formatTps", () => {
    expect(formatTps(96.44)).toBe("96.4 tok/s");
    expect(formatTps(1622.2)).toBe("1622 tok/s");
    expect(formatTps(Number.POSITIVE_INFINITY)).toBe("—");
  });
  test("formatPercent and formatParams", () => {
    expect(formatPercent(0.4567)).toBe("46%");
    expect(formatParams(0.135)).toBe("135M");
    expect(formatParams(70.6)).toBe("70.6B");
    expect(formatParams(8)).toBe("8B");
  });
});

describe("download totals", () => {
  test("an unknown total reads as unknown, never as 0", () => {
    expect(formatTotal(null)).toBe("unknown size");
    expect(formatTotal(1_500_000)).toBe(formatBytes(1_500_000));
    expect(formatDownloadPercent(300, null)).toBe("size unknown");
    expect(formatDownloadPercent(300, 0)).toBe("size unknown");
    expect(formatDownloadPercent(250, 1000)).toBe("25%");
  });
});
