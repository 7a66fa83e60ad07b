/** Settings defaults and validation; stored by the backend (tauri-plugin-store), no secrets. */
import type { SamplingParams, Settings } from "./bindings";

/** mlx-lm's and llama.cpp's usual defaults. */
export const DEFAULT_SAMPLING: SamplingParams = {
  temperature: 0.7,
  topP: 0.95,
  topK: 40,
  minP: 0.05,
  repetitionPenalty: 1.1,
  maxTokens: 1024,
  seed: null,
};

/** What a fresh install starts with. */
export const DEFAULT_SETTINGS: Settings = {
  defaultModel: null,
  sampling: DEFAULT_SAMPLING,
  systemPrompt: "You are a helpful assistant.",
  contextLength: 4096,
  memoryHeadroomBytes: 2_000_000_000,
  // Empty: the defaults (Minibar's store in its data folder, the Hugging Face cache).
  modelsFolder: "",
  hfCacheFolder: "",
  hfEndpoint: "https://huggingface.co",
  launchAtLogin: false,
  // The local server (OpenAI and Ollama APIs on loopback), on Ollama's port by default.
  localServer: false,
  localServerPort: 11434,
  // Models loaded although they won't fit ("Use anyway"); the backend still limits their memory.
  forcedModels: [],
};

/** Saved settings completed with defaults for fields an older version did not save. */
export function withDefaults(saved: Partial<Settings> | null): Settings {
  return {
    ...DEFAULT_SETTINGS,
    ...(saved ?? {}),
    sampling: { ...DEFAULT_SAMPLING, ...(saved?.sampling ?? {}) },
  };
}

const FOLDER_HINT = "A full path (starting with / or ~/), or empty for the default";

/** A folder setting the backend accepts: empty (the default), or a full path. */
export function isFolder(text: string): boolean {
  const t = text.trim();
  return t === "" || t.startsWith("/") || t === "~" || t.startsWith("~/") || /^[A-Za-z]:[\\/]/.test(t);
}

/** Problems by field path ("sampling.topP"); empty when the settings can be saved. */
export function validateSettings(s: Settings): Record<string, string> {
  const errors: Record<string, string> = {};
  const range = (path: string, v: number, min: number, max: number, integer = false) => {
    if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      errors[path] = `Between ${min} and ${max}${integer ? ", whole number" : ""}`;
    }
  };
  const p = s.sampling;
  range("sampling.temperature", p.temperature, 0, 2);
  range("sampling.topP", p.topP, 0, 1);
  range("sampling.topK", p.topK, 0, 1000, true);
  range("sampling.minP", p.minP, 0, 1);
  range("sampling.repetitionPenalty", p.repetitionPenalty, 0.5, 2);
  range("sampling.maxTokens", p.maxTokens, 1, 131072, true);
  if (p.seed !== null) range("sampling.seed", p.seed, 0, 2 ** 32 - 1, true);
  range("contextLength", s.contextLength, 256, 1_048_576, true);
  range("memoryHeadroomBytes", s.memoryHeadroomBytes, 0, 64e9);
  range("localServerPort", s.localServerPort, 1, 65535, true);
  if (!isFolder(s.modelsFolder)) errors.modelsFolder = FOLDER_HINT;
  if (!isFolder(s.hfCacheFolder)) errors.hfCacheFolder = FOLDER_HINT;
  try {
    const u = new URL(s.hfEndpoint);
    if (u.protocol !== "https:" && u.protocol !== "http:") errors.hfEndpoint = "An http(s) address";
  } catch {
    errors.hfEndpoint = "An http(s) address";
  }
  return errors;
}
