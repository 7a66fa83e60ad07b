import { describe, expect, test } from "vitest";
import type { FitReport } from "../../src/lib/bindings";
import { badgeFor, memorySegments, sizeBucket, whatIfCell } from "../../src/lib/fit";

const GB = 1e9;

/** A report as the app sends it: minibar-fit's verdict, numbers and thresholds. */
function report(verdict: FitReport["verdict"], neededBytes: number, usableBytes = 48 * GB, headroom = 2 * GB): FitReport {
  const comfortableBytes = usableBytes - Math.max(0.1 * usableBytes, headroom);
  return {
    verdict,
    reason: "estimator's reason",
    headroomBytes: usableBytes - neededBytes,
    maxContext: 4096,
    neededBytes,
    usableBytes,
    comfortableBytes,
    thresholds: { comfortMargin: 0.1, headroomBytes: headroom },
    breakdown: { weightsBytes: neededBytes, kvCacheBytes: 0, overheadBytes: 0, inUseBytes: 0, budgetBytes: usableBytes },
    across: null,
  };
}

describe("badgeFor", () => {
  test("labels each verdict and carries the reason", () => {
    expect(badgeFor(report("fits", 1 * GB))).toMatchObject({ label: "Fits", tone: "ok" });
    expect(badgeFor(report("tight", 45 * GB)).tone).toBe("warn");
    expect(badgeFor(report("wont_fit", 75 * GB)).label).toBe("Won't fit");
    expect(badgeFor(report("fits", 1 * GB)).title.split("\n")[0]).toBe("estimator's reason");
  });
  test("shows Rust's verdict as sent, even where the numbers alone would say otherwise", () => {
    // The UI never judges: a verdict the numbers contradict is still the one shown.
    expect(badgeFor(report("wont_fit", 1 * GB)).label).toBe("Won't fit");
    expect(badgeFor(report("fits", 75 * GB)).label).toBe("Fits");
  });
  test("the title states the thresholds the verdict was judged by", () => {
    const title = badgeFor(report("tight", 45 * GB, 48 * GB, 5 * GB)).title;
    expect(title).toContain("Fits up to 43.0 GB");
    expect(title).toContain("10% of it or 5.0 GB, whichever is more");
    expect(title).toContain("tight up to 48.0 GB");
    expect(badgeFor(report("fits", 1 * GB, 48 * GB, 0)).title).toContain("keeping 10% of it free");
  });
});

describe("memorySegments", () => {
  test("fractions of the budget when the need is below it", () => {
    const { segments, overflow, budgetFraction } = memorySegments({ weightsBytes: 4, kvCacheBytes: 2, overheadBytes: 1, inUseBytes: 3, budgetBytes: 20 });
    expect(overflow).toBe(false);
    expect(budgetFraction).toBe(1);
    expect(segments.map((s) => s.fraction)).toEqual([0.15, 0.2, 0.1, 0.05]);
  });
  test("scales to the need and flags overflow when it exceeds the budget", () => {
    const { segments, overflow, budgetFraction } = memorySegments({ weightsBytes: 30, kvCacheBytes: 5, overheadBytes: 5, inUseBytes: 10, budgetBytes: 25 });
    expect(overflow).toBe(true);
    expect(budgetFraction).toBe(0.5);
    expect(segments.reduce((a, s) => a + s.fraction, 0)).toBeCloseTo(1);
  });
});

test("sizeBucket", () => {
  expect(sizeBucket(0.135)).toBe("small");
  expect(sizeBucket(8)).toBe("medium");
  expect(sizeBucket(70.6)).toBe("large");
});

test("whatIfCell shows the verdict Rust sent and the largest context", () => {
  expect(whatIfCell({ ramGb: 64, verdict: "fits", maxContext: 33 * 1024 })).toEqual({ text: "fits 33K", tone: "ok" });
  expect(whatIfCell({ ramGb: 16, verdict: "tight", maxContext: 900 })).toEqual({ text: "tight 900", tone: "warn" });
  expect(whatIfCell({ ramGb: 8, verdict: "wont_fit", maxContext: 0 })).toEqual({ text: "no", tone: "bad" });
});
