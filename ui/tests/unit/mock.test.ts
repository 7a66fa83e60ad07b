// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { MockBackend } from "../../src/lib/mock";
import type { ChatEvent, DownloadProgress, BenchFinished, QuantizeProgress } from "../../src/lib/bindings";
import { applyChatEvent, newStream } from "../../src/lib/stream";
import { DEFAULT_SETTINGS } from "../../src/lib/settings";

// The mock stands in for the Rust backend in browser tests; these checks keep it honest to the
// contract in bindings.ts (event order, ids, state machines), with fake timers.
let mock: MockBackend;
beforeEach(() => {
  vi.useFakeTimers();
  localStorage.clear();
  mock = new MockBackend();
});
afterEach(() => {
  mock.dispose();
  vi.useRealTimers();
});

describe("mock backend", () => {
  test("streams started, ordered tokens, then done with stats", async () => {
    const seen: ChatEvent[] = [];
    await mock.on("chatEvent", (e) => seen.push(e));
    const s = await mock.createSession("smollm2-135m@q4_1");
    const g = await mock.sendMessage({ sessionId: s.id, content: "hello", model: "smollm2-135m@q4_1", params: null });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(seen[0].kind).toBe("started");
    expect(seen[seen.length - 1].kind).toBe("done");
    const tokens = seen.filter((e) => e.kind === "token");
    expect(tokens.map((e) => (e.kind === "token" ? e.index : -1))).toEqual(tokens.map((_, i) => i));
    const final = seen.reduce(applyChatEvent, newStream(g.requestId, g.assistantMessageId));
    const stored = await mock.openSession(s.id);
    expect(stored.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(stored.messages[1].content).toBe(final.text);
    expect(final.stats?.generatedTokens).toBe(tokens.length);
  });
  test("stop ends the stream with stopReason stopped", async () => {
    const seen: ChatEvent[] = [];
    await mock.on("chatEvent", (e) => seen.push(e));
    const s = await mock.createSession(null);
    const g = await mock.sendMessage({ sessionId: s.id, content: "hello", model: "smollm2-135m@q4_1", params: null });
    await vi.advanceTimersByTimeAsync(300);
    await mock.stopGeneration(g.requestId);
    const last = seen[seen.length - 1];
    expect(last.kind === "done" && last.stats.stopReason).toBe("stopped");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(seen.filter((e) => e.kind === "done")).toHaveLength(1);
  });
  test("refuses models that are not installed", async () => {
    const s = await mock.createSession(null);
    await expect(mock.sendMessage({ sessionId: s.id, content: "x", model: "llama-3.3-70b@4bit-g64", params: null })).rejects.toMatchObject({ kind: "not_found" });
  });
  test("a download goes from downloading to done and installs the model", async () => {
    const seen: DownloadProgress[] = [];
    await mock.on("downloadProgress", (d) => seen.push(d));
    await mock.startDownload("qwen3-4b@4bit-g64");
    await vi.advanceTimersByTimeAsync(20_000);
    expect(seen[0].state).toBe("downloading");
    expect(seen[seen.length - 1].state).toBe("done");
    expect(seen.every((d) => d.totalBytes != null && d.totalBytes > 0)).toBe(true);
    const downloaded = seen.map((d) => d.downloadedBytes);
    expect([...downloaded].sort((a, b) => a - b)).toEqual(downloaded);
    const catalog = await mock.listCatalog();
    expect(catalog.flatMap((m) => m.variants).find((v) => v.id === "qwen3-4b@4bit-g64")?.installed).toBe(true);
  });
  test("the benchmark reports progress and finishes with a stored run", async () => {
    const done: BenchFinished[] = [];
    await mock.on("benchFinished", (f) => done.push(f));
    const before = (await mock.listBenchRuns()).length;
    const id = await mock.startBenchmark("quick");
    await vi.advanceTimersByTimeAsync(30_000);
    expect(done[0]).toMatchObject({ runId: id, status: "done" });
    // Quick mode scales the batch as the shell's quick suite does: 1, 4 and 16.
    expect(done[0].run?.batch.map((b) => b.batch)).toEqual([1, 4, 16]);
    expect((await mock.listBenchRuns()).length).toBe(before + 1);
  });
  test("a quantization names its variant as the shell does and can be cancelled", async () => {
    const seen: QuantizeProgress[] = [];
    await mock.on("quantizeProgress", (q) => seen.push(q));
    const id = await mock.quantizeModel({ sourceVariantId: "smollm2-135m@q4_1", bits: 8, groupSize: 64 });
    expect(id).toBe("smollm2-135m@8bit");
    const g32 = await mock.quantizeModel({ sourceVariantId: "smollm2-135m@q4_1", bits: 4, groupSize: 32 });
    expect(g32).toBe("smollm2-135m@4bit-g32");
    await mock.cancelQuantize(g32);
    await expect(mock.cancelQuantize(g32)).rejects.toThrow(/no quantization/);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(seen.filter((q) => q.variantId === g32).map((q) => q.state)).toEqual(["cancelled"]);
    expect(seen.filter((q) => q.variantId === id).at(-1)?.state).toBe("done");
    const variants = (await mock.listCatalog()).flatMap((m) => m.variants);
    expect(variants.find((v) => v.id === id)?.installed).toBe(true);
    expect(variants.some((v) => v.id === g32)).toBe(false);
  });
  test("the model folders follow the settings, empty meaning the defaults", async () => {
    const before = await mock.libraryFolders();
    expect(before.modelsFolder).toBe(before.defaultModelsFolder);
    const settings = { ...DEFAULT_SETTINGS, modelsFolder: "/srv/models", hfCacheFolder: "/srv/hf" };
    await mock.saveSettings(settings);
    const after = await mock.libraryFolders();
    expect([after.modelsFolder, after.hfCacheFolder]).toEqual(["/srv/models", "/srv/hf"]);
    expect((await mock.diskUsage()).folder).toBe("/srv/hf");
  });
  test("settings never hold the hub token", async () => {
    await mock.setHubToken("hf_secret");
    expect(await mock.hasHubToken()).toBe(true);
    expect(JSON.stringify(localStorage)).not.toContain("hf_secret");
  });
  test("the local server needs the app: the mock refuses to start one and reports it off", async () => {
    await expect(mock.setLocalServer(true, 11434)).rejects.toMatchObject({ kind: "io", message: expect.stringMatching(/needs the Minibar app/) });
    expect(await mock.localServerStatus()).toEqual({ running: false, url: null, error: null });
    expect(await mock.setLocalServer(false, 8080)).toEqual({ running: false, url: null, error: null });
  });
});
