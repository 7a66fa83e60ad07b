import { describe, expect, test } from "vitest";
import type { FitReport, MachineMemory } from "../../src/lib/bindings";
import { badgeFor, memorySegments, neededBytes, reassess, sizeBucket } from "../../src/lib/fit";

const GB = 1e9;

function report(weights: number, kv = 0.5 * GB, overhead = 0.75 * GB): FitReport {
  return {
    verdict: "fits",
    reason: "estimator's reason",
    headroomBytes: 0,
    maxContext: 4096,
    breakdown: { weightsBytes: weights, kvCacheBytes: kv, overheadBytes: overhead, inUseBytes: 0, budgetBytes: 48 * GB },
  };
}

function memory(used: number, total = 64 * GB, gpu: number | null = 48 * GB): MachineMemory {
  return {
    totalBytes: total,
    availableBytes: total - used,
    usedBytes: used,
    swapUsedBytes: 0,
    pressure: "normal",
    gpuLimitBytes: gpu,
    minibarModelBytes: 0,
    loadedModel: null,
    timestampMs: 0,
  };
}

describe("badgeFor", () => {
  test("labels each verdict and carries the reason", () => {
    expect(badgeFor({ ...report(1), verdict: "fits" })).toEqual({ label: "Fits", tone: "ok", title: "estimator's reason" });
    expect(badgeFor({ ...report(1), verdict: "tight" }).tone).toBe("warn");
    expect(badgeFor({ ...report(1), verdict: "wont_fit" }).label).toBe("Won't fit");
  });
});

describe("reassess", () => {
  test("a 70B model at 4 bits fits a 64 GB Mac, at 8 bits it does not", () => {
    const m = memory(4 * GB); // GPU limit 48 GB: 3 GB left after the 4-bit model
    expect(reassess(report(39.7 * GB), m, 2 * GB).verdict).toBe("fits");
    expect(reassess(report(75 * GB), m, 2 * GB).verdict).toBe("wont_fit");
  });
  test("is tight when it fits only inside the headroom", () => {
    const need = neededBytes(report(40 * GB).breakdown); // 41.25 GB
    const m = memory(48 * GB - need - 1 * GB); // 1 GB left over
    const r = reassess(report(40 * GB), m, 2 * GB);
    expect(r.verdict).toBe("tight");
    expect(r.headroomBytes).toBeCloseTo(1 * GB, -3);
  });
  test("uses total memory when there is no GPU limit, and live in-use memory", () => {
    const r = reassess(report(10 * GB), memory(20 * GB, 24 * GB, null), 1 * GB);
    expect(r.breakdown.budgetBytes).toBe(24 * GB);
    expect(r.breakdown.inUseBytes).toBe(20 * GB);
    expect(r.verdict).toBe("wont_fit");
    expect(r.headroomBytes).toBeLessThan(0);
  });
  test("keeps the estimator's report when there is no memory sample", () => {
    const f = report(1 * GB);
    expect(reassess(f, null, 0)).toBe(f);
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
