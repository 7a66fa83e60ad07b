import { describe, expect, test } from "vitest";
import { DEFAULT_SETTINGS, validateSettings, withDefaults } from "../../src/lib/settings";
import { viewFromUrl, hashFor } from "../../src/lib/router";

describe("settings", () => {
  test("defaults are valid", () => {
    expect(validateSettings(DEFAULT_SETTINGS)).toEqual({});
  });
  test("fills fields an older version did not save", () => {
    const s = withDefaults({ contextLength: 8192, sampling: { temperature: 0.2 } as never });
    expect(s.contextLength).toBe(8192);
    expect(s.sampling.temperature).toBe(0.2);
    expect(s.sampling.topP).toBe(DEFAULT_SETTINGS.sampling.topP);
    expect(withDefaults(null)).toEqual(DEFAULT_SETTINGS);
  });
  test("flags out-of-range values by field", () => {
    const bad = {
      ...DEFAULT_SETTINGS,
      contextLength: 100,
      hfEndpoint: "ftp://x",
      modelsFolder: "relative/models",
      hfCacheFolder: "/ok",
      sampling: { ...DEFAULT_SETTINGS.sampling, temperature: 5, topK: 1.5, seed: -1 },
    };
    expect(Object.keys(validateSettings(bad)).sort()).toEqual(
      ["contextLength", "hfEndpoint", "modelsFolder", "sampling.seed", "sampling.temperature", "sampling.topK"].sort(),
    );
  });
  test("model folders are empty (the default) or full paths", () => {
    const folder = (modelsFolder: string) => validateSettings({ ...DEFAULT_SETTINGS, modelsFolder }).modelsFolder;
    for (const ok of ["", "  ", "/srv/models", "~/models", "~", "C:\\Models"]) expect(folder(ok)).toBeUndefined();
    for (const bad of ["models", "./models", "~user/models"]) expect(folder(bad)).toMatch(/full path/);
    expect(validateSettings({ ...DEFAULT_SETTINGS, hfCacheFolder: "hub" }).hfCacheFolder).toMatch(/full path/);
  });
  test("the local server's port is a whole number in 1..65535, Ollama's by default", () => {
    expect(DEFAULT_SETTINGS.localServerPort).toBe(11434);
    expect(DEFAULT_SETTINGS.localServer).toBe(false);
    const port = (localServerPort: number) => validateSettings({ ...DEFAULT_SETTINGS, localServerPort }).localServerPort;
    for (const ok of [1, 8080, 65535]) expect(port(ok)).toBeUndefined();
    for (const bad of [0, 65536, 80.5, NaN]) expect(port(bad)).toMatch(/Between 1 and 65535/);
  });
  test("the settings type has no field for the hub token", () => {
    expect(Object.keys(DEFAULT_SETTINGS).some((k) => /token/i.test(k))).toBe(false);
  });
});

describe("router", () => {
  test("reads the view from the hash, then the query, else chat", () => {
    expect(viewFromUrl("#/models")).toBe("models");
    expect(viewFromUrl("#bench")).toBe("bench");
    expect(viewFromUrl("#/settings/x")).toBe("settings");
    expect(viewFromUrl("", "?view=bench")).toBe("bench");
    expect(viewFromUrl("#/nope", "?view=nope")).toBe("chat");
    expect(hashFor("models")).toBe("#/models");
  });
});
