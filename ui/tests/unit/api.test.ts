// @vitest-environment jsdom
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { afterEach, describe, expect, test, vi } from "vitest";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import { ApiError, errorKind, errorMessage, initApi, setApi, unwrap } from "../../src/lib/api";
import type { MachineMemory } from "../../src/lib/bindings";
import { DEFAULT_SETTINGS } from "../../src/lib/settings";

const SRC = join(__dirname, "../../src");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

afterEach(() => {
  clearMocks();
  setApi(null);
  delete (window as unknown as Record<string, unknown>).__TAURI_INTERNALS__;
});

describe("api", () => {
  test("unwrap returns data or throws the backend's error kind", () => {
    expect(unwrap({ status: "ok", data: 3 })).toBe(3);
    try {
      unwrap({ status: "error", error: { kind: "model_too_large", message: "needs 40 GB" } });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ApiError);
      expect(errorKind(e)).toBe("model_too_large");
      expect(errorMessage(e)).toBe("needs 40 GB");
    }
  });
  test("the mock is chosen outside Tauri and labels itself", async () => {
    const b = await initApi();
    expect(b.isMock).toBe(true);
    (b as unknown as { dispose(): void }).dispose();
  });
  test("inside Tauri the IPC backend is chosen and calls go through invoke", async () => {
    const invoke = vi.fn(async (cmd: string) => (cmd === "list_sessions" ? [] : null));
    (window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = { invoke, transformCallback: () => 1 };
    const b = await initApi();
    expect(b.isMock).toBe(false);
    await expect(b.listSessions()).resolves.toEqual([]);
    expect(invoke.mock.calls[0][0]).toBe("list_sessions");
  });
  test("a backend error from invoke surfaces as an ApiError", async () => {
    const invoke = vi.fn(async () => {
      throw { kind: "not_found", message: "no such chat" };
    });
    (window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = { invoke, transformCallback: () => 1 };
    const b = await initApi();
    await expect(b.openSession("x")).rejects.toMatchObject({ kind: "not_found", message: "no such chat" });
    expect(invoke.mock.calls[0]).toEqual(["open_session", { id: "x" }, undefined]);
  });
  test("in Tauri, settings go through tauri-plugin-store and events arrive by their wire names", async () => {
    const calls: string[] = [];
    let stored: unknown = null;
    mockIPC(
      (cmd, args) => {
        calls.push(cmd);
        // The app opens the store at start; the UI only looks it up (no store:allow-load).
        if (cmd === "plugin:store|get_store") return 7;
        if (cmd === "plugin:store|get") return [stored, stored !== null];
        if (cmd === "plugin:store|set") stored = (args as { value: unknown }).value;
        return null;
      },
      { shouldMockEvents: true },
    );
    const b = await initApi();
    expect(await b.loadSettings()).toBeNull();
    await b.saveSettings(DEFAULT_SETTINGS);
    expect(calls.filter((c) => !c.startsWith("plugin:event"))).toEqual([
      "plugin:store|get_store",
      "plugin:store|get",
      "plugin:store|set",
      "plugin:store|save",
      "settings_changed",
    ]);
    expect(await b.loadSettings()).toEqual(DEFAULT_SETTINGS);

    const seen: MachineMemory[] = [];
    const off = await b.on("memoryUpdate", (m) => seen.push(m));
    const sample = { totalBytes: 1, availableBytes: 1, usedBytes: 0, swapUsedBytes: 0, pressure: "normal", gpuLimitBytes: null, minibarModelBytes: 0, loadedModel: null, timestampMs: 1 };
    await emit("memory-update", sample);
    expect(seen).toEqual([sample]);
    off();
  });
  test("only api.ts talks to Tauri or uses the commands and events of bindings.ts", () => {
    const offenders = files(SRC)
      .filter((f) => !/lib[\\/](api|bindings)\.ts$/.test(f))
      .filter((f) => {
        const text = readFileSync(f, "utf8");
        return /@tauri-apps\//.test(text) || /import\s*\{[^}]*\b(commands|events)\b[^}]*\}\s*from\s*["'][^"']*bindings["']/.test(text);
      })
      .map((f) => relative(SRC, f));
    expect(offenders).toEqual([]);
  });
});
