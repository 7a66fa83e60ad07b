/**
 * The contract between Minibar's UI and its Rust shell (`src-tauri/`).
 *
 * Written by hand first, in the shape tauri-specta 2 exports (`commands`, `events`, `Result`), so
 * that the file the shell generates later (`tauri_specta::Builder::export(Typescript::default()
 * .bigint(BigIntExportBehavior::Number), "../ui/src/lib/bindings.ts")`) replaces this one without
 * touching anything else. Only `api.ts` may import `commands` and `events` from here; every
 * other module imports types only (a unit test enforces this).
 *
 * Conventions the Rust side must follow so the generated file matches:
 * - Rust `snake_case` command names; tauri-specta exposes them as camelCase methods. Arguments are
 *   camelCase keys (Tauri's default renaming of Rust parameters).
 * - Structs use `#[serde(rename_all = "camelCase")]`; enums of strings use
 *   `#[serde(rename_all = "snake_case")]`; tagged enums (`ChatEvent`) use `#[serde(tag = "kind",
 *   rename_all = "camelCase", rename_all_fields = "camelCase")]`.
 * - Byte counts, token counts and timestamps are plain numbers (u64 exported as `number`: exact up
 *   to 2^53). Timestamps are Unix milliseconds. Durations carry their unit in the field name.
 * - Fallible commands return `Result<T, AppError>`; tauri-specta turns that into
 *   `Promise<Result<T, AppError>>`.
 * - Events are emitted to all windows with `tauri_specta::Event`, which names each event after
 *   its Rust type in kebab-case: the payload types below are named so (`ChatEvent` → `chat-event`,
 *   `MemoryUpdate` → `memory-update`, a `#[serde(transparent)]` newtype over `MachineMemory`).
 *
 * Settings are not a command: they live in tauri-plugin-store, file `settings.json`, key
 * `settings`, value `Settings` (see `SETTINGS_STORE`). The Rust side reads the same store. The
 * hub token never enters that store: `setHubToken` hands it to the OS keychain.
 */

// ---------------------------------------------------------------- errors

/** What went wrong, in a form the UI can act on (`kind`) and show (`message`). */
export type AppError = { kind: AppErrorKind; message: string };

/**
 * The classes of failure the UI distinguishes: each has its own empty or error state.
 * - `no_model`: no model is installed (or the requested one is gone).
 * - `model_too_large`: the model will not fit; the UI offers "load anyway".
 * - `engine`: the engine failed while loading or generating.
 * - `download`: network, disk or checksum failure while downloading.
 * - `not_found`: an id (session, run, model) that does not exist.
 * - `invalid_input`: a bad argument (empty message, bad quantization).
 * - `cancelled`: the user cancelled.
 * - `io`: the file system, the keychain or SQLite failed.
 */
export type AppErrorKind =
  | "no_model"
  | "model_too_large"
  | "engine"
  | "download"
  | "not_found"
  | "invalid_input"
  | "cancelled"
  | "io";

/** tauri-specta's result type for fallible commands. */
export type Result<T, E> = { status: "ok"; data: T } | { status: "error"; error: E };

// ---------------------------------------------------------------- memory and fit

/** The verdict of the memory estimator (crates/fit) for one model at one quantization. */
export type FitVerdict = "fits" | "tight" | "wont_fit";

/** Where the bytes of a model would go, against this machine's budget. */
export type MemoryBreakdown = {
  /** Quantized weights, tied embeddings counted once. */
  weightsBytes: number;
  /** KV cache at the configured context length. */
  kvCacheBytes: number;
  /** Activations, prefill scratch and runtime overhead. */
  overheadBytes: number;
  /** Memory already in use on the machine (other apps and models Minibar holds). */
  inUseBytes: number;
  /** The budget the verdict is judged against (GPU working-set limit on macOS, RAM elsewhere). */
  budgetBytes: number;
};

/** The estimator's answer for one model variant on this machine. */
export type FitReport = {
  verdict: FitVerdict;
  /** One sentence a user understands ("needs 5.1 GB, 9.8 GB free"). */
  reason: string;
  /** budget − (in use + weights + KV + overhead); negative when it won't fit. */
  headroomBytes: number;
  /** Largest context length that still fits, in tokens (0 when even the weights don't). */
  maxContext: number;
  breakdown: MemoryBreakdown;
};

/** This machine's memory, sent every second as `memory-update` and by `memoryStatus`. */
export type MachineMemory = {
  totalBytes: number;
  availableBytes: number;
  /** Used by everything on the machine, Minibar included. */
  usedBytes: number;
  swapUsedBytes: number;
  pressure: "normal" | "warning" | "critical";
  /** Metal's recommendedMaxWorkingSetSize on macOS; null where the platform has none. */
  gpuLimitBytes: number | null;
  /** Held by models Minibar has loaded (measured by the engine). */
  minibarModelBytes: number;
  /** Variant id of the loaded model, if any. */
  loadedModel: string | null;
  /** When this sample was taken. */
  timestampMs: number;
};

/** Payload of `memory-update` (a transparent newtype over `MachineMemory` on the Rust side). */
export type MemoryUpdate = MachineMemory;

// ---------------------------------------------------------------- models

/** One quantization of a catalog model. `id` is `<modelId>@<quant>`, e.g. `smollm2-135m@q4_1`. */
export type ModelVariant = {
  id: string;
  modelId: string;
  /** Short label: `f32`, `bf16`, `q8`, `4bit-g64`, `q4_1`... */
  quant: string;
  /** Effective bits per weight including scales (4-bit g64: 4.5). */
  bitsPerWeight: number;
  /** Download size. */
  sizeBytes: number;
  fit: FitReport;
  installed: boolean;
  /** The running or last download of this variant; null when none. */
  download: DownloadProgress | null;
};

/** A model of the curated catalog (models.toml) with its quantizations. */
export type CatalogModel = {
  id: string;
  name: string;
  family: string;
  /** Parameters in billions (0.135 for SmolLM2-135M). */
  paramsB: number;
  description: string;
  /** Trained context length in tokens. */
  contextLength: number;
  variants: ModelVariant[];
};

/** The state machine of a download. */
export type DownloadState =
  | "queued"
  | "downloading"
  | "paused"
  | "verifying"
  | "done"
  | "failed"
  | "cancelled";

/** A download's progress; event `download-progress`, at most a few times a second per download. */
export type DownloadProgress = {
  variantId: string;
  state: DownloadState;
  downloadedBytes: number;
  totalBytes: number;
  /** Smoothed over the last few seconds; 0 when paused. */
  bytesPerSecond: number;
  /** null when unknown (paused, stalled, just started). */
  etaSeconds: number | null;
  error: AppError | null;
};

/** Quantize an installed variant into a new one. */
export type QuantizeRequest = { sourceVariantId: string; bits: 4 | 6 | 8; groupSize: 32 | 64 | 128 };

/** A quantization job's progress; event `quantize-progress`. */
export type QuantizeProgress = {
  /** The variant being produced. */
  variantId: string;
  sourceVariantId: string;
  state: "running" | "done" | "failed";
  /** 0..1 */
  fraction: number;
  error: AppError | null;
};

/** The models folder and its disk. */
export type DiskUsage = {
  folder: string;
  modelsBytes: number;
  freeBytes: number;
  totalBytes: number;
};

// ---------------------------------------------------------------- chat

/** Sampling parameters; `seed` null means random. */
export type SamplingParams = {
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  repetitionPenalty: number;
  maxTokens: number;
  seed: number | null;
};

/** Why a generation ended. */
export type StopReason = "eos" | "max_tokens" | "stopped" | "error";

/** Figures shown under each reply. */
export type GenerationStats = {
  promptTokens: number;
  generatedTokens: number;
  /** Time to first token: from the request to the first generated token. */
  ttftMs: number;
  /** Decode speed: generated tokens ÷ time after the first token. */
  tokensPerSecond: number;
  totalMs: number;
  stopReason: StopReason;
};

/** A message as stored in the SQLite history. */
export type ChatMessage = {
  id: string;
  role: "system" | "user" | "assistant";
  content: string;
  /** Variant id that wrote an assistant message; null for user messages. */
  model: string | null;
  createdAtMs: number;
  /** `streaming` only while a generation is running (or was cut off by a crash). */
  status: "done" | "streaming" | "stopped" | "error";
  stats: GenerationStats | null;
  error: AppError | null;
};

/** A chat with its messages, in order. */
export type ChatSession = {
  id: string;
  title: string;
  model: string | null;
  createdAtMs: number;
  updatedAtMs: number;
  messages: ChatMessage[];
};

/** A row of the session list, newest first. */
export type SessionSummary = {
  id: string;
  title: string;
  model: string | null;
  updatedAtMs: number;
  messageCount: number;
  /** The start of the last message, for the list. */
  preview: string;
};

/** A search result: the session and the matching text around the hit. */
export type SearchHit = { session: SessionSummary; messageId: string; snippet: string };

/** A chat exported as Markdown. */
export type MarkdownExport = { fileName: string; markdown: string };

/** Ask for a reply to a new user message. `params` null uses the saved sampling defaults. */
export type SendRequest = {
  sessionId: string;
  content: string;
  model: string;
  params: SamplingParams | null;
};

/** What a generation request started: the ids to match `chat-event`s against. */
export type GenerationStarted = {
  requestId: string;
  sessionId: string;
  /** The stored user message (new or edited); null for a regenerate. */
  userMessageId: string | null;
  /** The assistant message that will receive the tokens. */
  assistantMessageId: string;
};

/**
 * Event `chat-event`: the stream of a generation. In order, per request: one `started`, any
 * number of `token` (with `index` counting from 0, so the UI can drop duplicates), then exactly
 * one of `done` or `error`. A stop ends with `done` whose stats say `stopped`.
 */
export type ChatEvent =
  | { kind: "started"; requestId: string; sessionId: string; messageId: string; model: string }
  | { kind: "token"; requestId: string; sessionId: string; messageId: string; index: number; text: string }
  | { kind: "done"; requestId: string; sessionId: string; messageId: string; stats: GenerationStats }
  | {
      kind: "error";
      requestId: string;
      sessionId: string;
      messageId: string;
      error: AppError;
      stats: GenerationStats | null;
    };

// ---------------------------------------------------------------- benchmark

/** Quick runs in under a minute; full runs the whole ladder with depth and batch scaling. */
export type BenchMode = "quick" | "full";

/** Mean ± standard deviation over `n` repetitions. */
export type Stat = { mean: number; std: number; n: number };

/** The machine a run was made on. */
export type BenchMachine = {
  chip: string;
  cpuCores: number;
  gpuCores: number | null;
  memoryBytes: number;
  os: string;
  mlxVersion: string;
  backend: "metal" | "cpu";
  /** Measured copy/triad bandwidth. */
  bandwidthGBs: number;
};

/** One model of the ladder. Speeds in tokens per second. */
export type BenchModelResult = {
  variantId: string;
  name: string;
  bitsPerWeight: number;
  pp512: Stat;
  tg128: Stat;
  /** tg128 after a 4096-token prompt; null where the model's context is shorter. */
  tgDepth4096: Stat | null;
  ttftMs: Stat;
  peakMemoryBytes: number;
  /** bandwidth ÷ bytes read per token. */
  rooflineTps: number;
  /** tg128 mean ÷ roofline, 0..1. */
  efficiency: number;
};

/** One batch size of the scaling test on the default model. */
export type BatchPoint = {
  batch: number;
  /** Total generated tokens per second over all sequences. */
  totalTps: number;
  wallSeconds: number;
  /** wall time ÷ wall time at batch 1. */
  timeRatio: number;
  /** work ÷ work at batch 1 (= batch). */
  workRatio: number;
};

/** A finished benchmark run as stored in history. */
export type BenchRun = {
  id: string;
  startedAtMs: number;
  finishedAtMs: number;
  mode: BenchMode;
  machine: BenchMachine;
  defaultModel: string;
  models: BenchModelResult[];
  /** Empty when the mode skipped it or the default model could not batch. */
  batch: BatchPoint[];
};

/** A row of the history list. */
export type BenchRunSummary = {
  id: string;
  startedAtMs: number;
  mode: BenchMode;
  chip: string;
  defaultModel: string;
  /** The default model's figures, for the history chart. */
  pp512: number;
  tg128: number;
};

/** A published figure to compare against, with its source (a data file on the Rust side). */
export type ReferenceFigure = {
  chip: string;
  model: string;
  metric: "pp512" | "tg128" | "pp2048";
  tokensPerSecond: number;
  source: string;
};

/** Event `bench-progress`: sent as each step starts and finishes. */
export type BenchProgress = {
  runId: string;
  /** Human text: "Memory bandwidth", "pp512 · SmolLM2-135M q4_1", "Batch 8"... */
  step: string;
  stepIndex: number;
  stepCount: number;
  /** 0..1 over the whole run. */
  fraction: number;
};

/** Event `bench-finished`: exactly once per run. `run` is set when `status` is `done`. */
export type BenchFinished = {
  runId: string;
  status: "done" | "cancelled" | "failed";
  run: BenchRun | null;
  error: AppError | null;
};

/** Export formats with llama-bench-compatible column names. */
export type BenchExportFormat = "json" | "csv" | "markdown";

// ---------------------------------------------------------------- settings and windows

/** Saved settings (tauri-plugin-store `settings.json`, key `settings`). No secrets. */
export type Settings = {
  /** Variant id; null picks the smallest installed model that fits. */
  defaultModel: string | null;
  sampling: SamplingParams;
  systemPrompt: string;
  /** Tokens. */
  contextLength: number;
  /** Kept free when judging fit. */
  memoryHeadroomBytes: number;
  modelsFolder: string;
  hfEndpoint: string;
  launchAtLogin: boolean;
};

/** Where tauri-plugin-store keeps `Settings`. */
export const SETTINGS_STORE = { file: "settings.json", key: "settings" } as const;

/** The UI's routes; the shell opens windows at `index.html#/<view>`. */
export type View = "chat" | "models" | "bench" | "settings";

/** Versions and platform, for the About line and the bench view. */
export type AppInfo = { version: string; os: string; backend: "metal" | "cpu"; mlxVersion: string };

// ---------------------------------------------------------------- commands (tauri-specta shape)

import { invoke as TAURI_INVOKE } from "@tauri-apps/api/core";
import * as TAURI_API_EVENT from "@tauri-apps/api/event";

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<Result<T, AppError>> {
  try {
    return { status: "ok", data: await TAURI_INVOKE<T>(cmd, args) };
  } catch (e) {
    if (e instanceof Error) throw e;
    return { status: "error", error: e as AppError };
  }
}

/** The Rust commands, one method each; the Rust name is the snake_case of the method name. */
export const commands = {
  /** `app_info`: versions and platform. */
  async appInfo(): Promise<Result<AppInfo, AppError>> {
    return call("app_info");
  },

  // chat history (SQLite, WAL; messages written as they stream)
  /** `list_sessions`: every session, newest first. */
  async listSessions(): Promise<Result<SessionSummary[], AppError>> {
    return call("list_sessions");
  },
  /** `search_sessions`: full-text search over titles and messages, best first. */
  async searchSessions(query: string): Promise<Result<SearchHit[], AppError>> {
    return call("search_sessions", { query });
  },
  /** `open_session`: a session with all its messages. */
  async openSession(id: string): Promise<Result<ChatSession, AppError>> {
    return call("open_session", { id });
  },
  /** `create_session`: an empty session; `model` null uses the default model. */
  async createSession(model: string | null): Promise<Result<ChatSession, AppError>> {
    return call("create_session", { model });
  },
  /** `delete_session`: removes a session and its messages (stops its generation first). */
  async deleteSession(id: string): Promise<Result<null, AppError>> {
    return call("delete_session", { id });
  },
  /** `export_session_markdown`: the chat as Markdown, with a suggested file name. */
  async exportSessionMarkdown(id: string): Promise<Result<MarkdownExport, AppError>> {
    return call("export_session_markdown", { id });
  },

  // generation (tokens arrive as `chat-event`)
  /** `send_message`: stores the user message, starts a reply. */
  async sendMessage(request: SendRequest): Promise<Result<GenerationStarted, AppError>> {
    return call("send_message", { request });
  },
  /** `regenerate`: replaces the session's last assistant message with a new reply. */
  async regenerate(
    sessionId: string,
    model: string,
    params: SamplingParams | null,
  ): Promise<Result<GenerationStarted, AppError>> {
    return call("regenerate", { sessionId, model, params });
  },
  /** `edit_and_resend`: replaces a user message's text, drops every message after it, replies. */
  async editAndResend(
    sessionId: string,
    messageId: string,
    content: string,
    model: string,
    params: SamplingParams | null,
  ): Promise<Result<GenerationStarted, AppError>> {
    return call("edit_and_resend", { sessionId, messageId, content, model, params });
  },
  /** `stop_generation`: stops a request; its stream ends with `done` (stopReason `stopped`). */
  async stopGeneration(requestId: string): Promise<Result<null, AppError>> {
    return call("stop_generation", { requestId });
  },

  // models (catalog, fit, library, downloads)
  /** `list_catalog`: the catalog with fit verdicts for this machine and the saved settings. */
  async listCatalog(): Promise<Result<CatalogModel[], AppError>> {
    return call("list_catalog");
  },
  /** `memory_status`: one sample of `memory-update`, for the first paint. */
  async memoryStatus(): Promise<Result<MachineMemory, AppError>> {
    return call("memory_status");
  },
  /** `disk_usage`: the models folder's size and its disk's free space. */
  async diskUsage(): Promise<Result<DiskUsage, AppError>> {
    return call("disk_usage");
  },
  /** `start_download`: queues a variant; progress arrives as `download-progress`. */
  async startDownload(variantId: string): Promise<Result<DownloadProgress, AppError>> {
    return call("start_download", { variantId });
  },
  /** `pause_download`: keeps the partial file for a later resume. */
  async pauseDownload(variantId: string): Promise<Result<null, AppError>> {
    return call("pause_download", { variantId });
  },
  /** `resume_download`: continues a paused or failed download from where it stopped. */
  async resumeDownload(variantId: string): Promise<Result<null, AppError>> {
    return call("resume_download", { variantId });
  },
  /** `cancel_download`: stops and deletes the partial file. */
  async cancelDownload(variantId: string): Promise<Result<null, AppError>> {
    return call("cancel_download", { variantId });
  },
  /** `delete_model`: removes an installed variant from disk. */
  async deleteModel(variantId: string): Promise<Result<null, AppError>> {
    return call("delete_model", { variantId });
  },
  /** `quantize_model`: starts a quantization; returns the new variant id; progress as `quantize-progress`. */
  async quantizeModel(request: QuantizeRequest): Promise<Result<string, AppError>> {
    return call("quantize_model", { request });
  },

  // benchmark
  /** `start_benchmark`: starts a run, returns its id; progress as `bench-progress`, end as `bench-finished`. */
  async startBenchmark(mode: BenchMode): Promise<Result<string, AppError>> {
    return call("start_benchmark", { mode });
  },
  /** `cancel_benchmark`: stops a run at the next repetition. */
  async cancelBenchmark(runId: string): Promise<Result<null, AppError>> {
    return call("cancel_benchmark", { runId });
  },
  /** `list_bench_runs`: the history, oldest first. */
  async listBenchRuns(): Promise<Result<BenchRunSummary[], AppError>> {
    return call("list_bench_runs");
  },
  /** `get_bench_run`: one run with every figure. */
  async getBenchRun(id: string): Promise<Result<BenchRun, AppError>> {
    return call("get_bench_run", { id });
  },
  /** `bench_reference`: published Apple figures, with their sources. */
  async benchReference(): Promise<Result<ReferenceFigure[], AppError>> {
    return call("bench_reference");
  },
  /** `export_bench_run`: a run as JSON, CSV or Markdown (llama-bench column names). */
  async exportBenchRun(id: string, format: BenchExportFormat): Promise<Result<string, AppError>> {
    return call("export_bench_run", { id, format });
  },

  // settings that are not plain store values
  /** `set_hub_token`: stores the Hugging Face token in the OS keychain; null deletes it. */
  async setHubToken(token: string | null): Promise<Result<null, AppError>> {
    return call("set_hub_token", { token });
  },
  /** `has_hub_token`: whether the keychain holds a token (the token itself never comes back). */
  async hasHubToken(): Promise<Result<boolean, AppError>> {
    return call("has_hub_token");
  },
  /** `set_launch_at_login`: turns tauri-plugin-autostart on or off. */
  async setLaunchAtLogin(enabled: boolean): Promise<Result<null, AppError>> {
    return call("set_launch_at_login", { enabled });
  },
  /** `settings_changed`: tells the backend the store changed (re-reads it: fit, sampling). */
  async settingsChanged(): Promise<Result<null, AppError>> {
    return call("settings_changed");
  },

  // windows
  /** `hide_window`: hides the calling window (Esc in the popover). */
  async hideWindow(): Promise<Result<null, AppError>> {
    return call("hide_window");
  },
  /** `open_external`: opens an http(s) link from a reply in the default browser. */
  async openExternal(url: string): Promise<Result<null, AppError>> {
    return call("open_external", { url });
  },
  /** `open_view`: opens or focuses the large window at a view (Models, Benchmark, Settings). */
  async openView(view: View): Promise<Result<null, AppError>> {
    return call("open_view", { view });
  },
};

// ---------------------------------------------------------------- events (tauri-specta shape)

/** Payload type of each event, by camelCase name. */
export type Events = {
  chatEvent: ChatEvent;
  downloadProgress: DownloadProgress;
  quantizeProgress: QuantizeProgress;
  memoryUpdate: MemoryUpdate;
  benchProgress: BenchProgress;
  benchFinished: BenchFinished;
};

/** The wire name of each event (kebab-case of the Rust type, as tauri-specta names them). */
export const EVENT_NAMES: { [K in keyof Events]: string } = {
  chatEvent: "chat-event",
  downloadProgress: "download-progress",
  quantizeProgress: "quantize-progress",
  /** Every second, from a cheap sampler (under 1% of a core). */
  memoryUpdate: "memory-update",
  benchProgress: "bench-progress",
  benchFinished: "bench-finished",
};

type EventObj<T> = {
  listen: (cb: TAURI_API_EVENT.EventCallback<T>) => Promise<TAURI_API_EVENT.UnlistenFn>;
};

/** Listen to the backend's events: `events.chatEvent.listen(e => e.payload)`. */
export const events = Object.fromEntries(
  Object.entries(EVENT_NAMES).map(([key, name]) => [
    key,
    { listen: (cb: TAURI_API_EVENT.EventCallback<unknown>) => TAURI_API_EVENT.listen(name, cb) },
  ]),
) as { [K in keyof Events]: EventObj<Events[K]> };
