/**
 * MOCK OF THE RUST BACKEND, for browser development and the UI tests only.
 *
 * `api.ts` loads this module only when the page is not inside Tauri (no
 * `window.__TAURI_INTERNALS__`): the real app always talks to the Rust side over IPC. It behaves
 * like the backend the contract in `bindings.ts` describes (tokens streamed on timers, downloads
 * with progress, a benchmark with progress and results) so flows can be exercised in headless
 * Chromium; its numbers are invented and the UI labels itself "mock backend" while it runs.
 *
 * Hooks: a message containing "/long" gets a reply of a few thousand tokens; "/error" fails with
 * an engine error; the variant
 * `gemma-3-12b@4bit` fails its download at 60% (a checksum mismatch) once.
 */
import type { Backend, Unlisten } from "./api";
import { ApiError } from "./api";
import type {
  AppError,
  AppInfo,
  BatchPoint,
  BenchExportFormat,
  BenchMode,
  BenchModelResult,
  BenchRun,
  BenchRunSummary,
  CatalogModel,
  ChatMessage,
  ChatSession,
  DiskUsage,
  LibraryFolders,
  LocalServerStatus,
  ClusterStatus,
  DownloadProgress,
  Events,
  FitReport,
  FitVerdict,
  GenerationStarted,
  HubModel,
  MachineMemory,
  MarkdownExport,
  ModelVariant,
  QuantizeProgress,
  QuantizeRequest,
  ReferenceFigure,
  SamplingParams,
  SearchHit,
  SendRequest,
  SessionSummary,
  Settings,
  View,
  WhatIfTable,
} from "./bindings";

const GB = 1e9;
const MB = 1e6;

type ModelSpec = {
  id: string;
  name: string;
  family: string;
  paramsB: number;
  contextLength: number;
  description: string;
  /** KV cache bytes per token of context (f16 cache). */
  kvPerToken: number;
  variants: { quant: string; bits: number; size: number; installed?: boolean }[];
  /** Why the engine does not run it yet (the app's catalog says so from the engine's table). */
  notYet?: string;
};

const SPECS: ModelSpec[] = [
  {
    id: "smollm2-135m",
    name: "SmolLM2 135M Instruct",
    family: "SmolLM",
    paramsB: 0.135,
    contextLength: 8192,
    description: "Tiny and quick; the default model.",
    kvPerToken: 30 * 2 * 3 * 64 * 2,
    variants: [
      { quant: "q4_1", bits: 5, size: 98_362_432, installed: true },
      { quant: "8bit-g64", bits: 8.5, size: 145 * MB },
      { quant: "f32", bits: 32, size: 538 * MB },
    ],
  },
  {
    id: "qwen3-0.6b",
    name: "Qwen3 0.6B",
    family: "Qwen",
    paramsB: 0.6,
    contextLength: 32768,
    description: "Small multilingual model with thinking mode.",
    kvPerToken: 28 * 2 * 8 * 128 * 2,
    variants: [
      { quant: "4bit-g64", bits: 4.5, size: 335 * MB, installed: true },
      { quant: "8bit-g64", bits: 8.5, size: 634 * MB },
    ],
  },
  {
    id: "qwen3-4b",
    name: "Qwen3 4B",
    family: "Qwen",
    paramsB: 4.0,
    contextLength: 32768,
    description: "Strong general model for its size.",
    kvPerToken: 36 * 2 * 8 * 128 * 2,
    variants: [
      { quant: "4bit-g64", bits: 4.5, size: 2.26 * GB },
      { quant: "8bit-g64", bits: 8.5, size: 4.27 * GB },
      { quant: "bf16", bits: 16, size: 8.05 * GB },
    ],
  },
  {
    id: "llama-3.1-8b",
    name: "Llama 3.1 8B Instruct",
    family: "Llama",
    paramsB: 8.0,
    contextLength: 131072,
    description: "Meta's general-purpose assistant.",
    kvPerToken: 32 * 2 * 8 * 128 * 2,
    variants: [
      { quant: "4bit-g64", bits: 4.5, size: 4.52 * GB },
      { quant: "8bit-g64", bits: 8.5, size: 8.54 * GB },
    ],
  },
  {
    id: "gemma-3-12b",
    name: "Gemma 3 12B",
    family: "Gemma",
    paramsB: 12.0,
    contextLength: 131072,
    description: "Sliding-window attention keeps its cache small.",
    kvPerToken: 8 * 2 * 8 * 256 * 2,
    variants: [{ quant: "4bit", bits: 4.5, size: 6.89 * GB }],
  },
  {
    id: "qwen3-30b-a3b",
    name: "Qwen3 30B-A3B",
    family: "Qwen",
    paramsB: 30.5,
    contextLength: 32768,
    description: "Mixture of experts: 3B active per token.",
    notYet: "mixture-of-experts layers (Qwen3-MoE's 128 routed experts) are not in Minibar's engine yet",
    kvPerToken: 48 * 2 * 4 * 128 * 2,
    variants: [
      { quant: "4bit-g64", bits: 4.5, size: 17.2 * GB },
      { quant: "8bit-g64", bits: 8.5, size: 32.5 * GB },
    ],
  },
  {
    id: "llama-3.3-70b",
    name: "Llama 3.3 70B Instruct",
    family: "Llama",
    paramsB: 70.6,
    contextLength: 131072,
    description: "Frontier-class open model; needs a 64 GB Mac at 4 bits.",
    kvPerToken: 80 * 2 * 8 * 128 * 2,
    variants: [
      { quant: "4bit-g64", bits: 4.5, size: 39.7 * GB },
      { quant: "8bit-g64", bits: 8.5, size: 75.0 * GB },
    ],
  },
];

const LLAMA_CPP = { source: "llama.cpp discussion #4167: Performance of llama.cpp on Apple Silicon M-series", url: "https://github.com/ggml-org/llama.cpp/discussions/4167" };
const MLX_LM = { source: "mlx-lm BENCHMARKS.md", url: "https://github.com/ml-explore/mlx-lm/blob/main/BENCHMARKS.md" };
const REFERENCE: ReferenceFigure[] = [
  { chip: "M2", model: "LLaMA-2 7B", quant: "Q4_0", engine: "llama.cpp", metric: "tg128", tokensPerSecond: 21.9, ...LLAMA_CPP },
  { chip: "M4 Pro", model: "LLaMA-2 7B", quant: "Q4_0", engine: "llama.cpp", metric: "tg128", tokensPerSecond: 50.7, ...LLAMA_CPP },
  { chip: "M4 Max", model: "LLaMA-2 7B", quant: "Q4_0", engine: "llama.cpp", metric: "tg128", tokensPerSecond: 83.1, ...LLAMA_CPP },
  { chip: "M2 Ultra", model: "LLaMA-2 7B", quant: "Q4_0", engine: "llama.cpp", metric: "tg128", tokensPerSecond: 94.3, ...LLAMA_CPP },
  { chip: "M4 Max", model: "Qwen3-4B", quant: "4-bit", engine: "mlx-lm", metric: "tg128", tokensPerSecond: 134.5, ...MLX_LM },
  { chip: "M4 Max", model: "Qwen3-4B", quant: "4-bit", engine: "mlx-lm", metric: "pp2048", tokensPerSecond: 1622, ...MLX_LM },
];

const TOTAL = 24 * GB;
const GPU_LIMIT = 18 * GB;
const OVERHEAD = 0.75 * GB;
const SETTINGS_KEY = "minibar-mock-settings";

type Listener = (payload: never) => void;

/** A tiny pseudo-random generator, so mock figures vary but runs are reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

let counter = 0;
function id(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}

function err(kind: AppError["kind"], message: string): ApiError {
  return new ApiError({ kind, message });
}

/** Replies the mock streams, chosen by what the message asks. */
function replyFor(prompt: string): string {
  const p = prompt.toLowerCase();
  if (p.includes("/long")) {
    // A long reply with code and tables, for measuring frame times while streaming.
    return Array.from({ length: 24 }, (_, i) => `### Part ${i + 1}\n\n${replyFor("code")}\n\n${replyFor("memory")}`).join("\n\n");
  }
  if (p.includes("code") || p.includes("rust") || p.includes("function")) {
    return [
      "Here is a small Rust function that sums the even numbers of a slice:",
      "",
      "```rust",
      "fn sum_even(xs: &[i64]) -> i64 {",
      "    xs.iter().filter(|x| *x % 2 == 0).sum()",
      "}",
      "```",
      "",
      "It walks the slice once, so it runs in **O(n)** time and needs no extra memory.",
    ].join("\n");
  }
  return [
    `Good question. In short, **${prompt.trim().slice(0, 40) || "that"}** comes down to three things:`,
    "",
    "1. *Memory bandwidth* bounds how fast each token is generated.",
    "2. Quantization shrinks the weights, so more of the model fits and each token reads fewer bytes.",
    "3. The KV cache grows with the context length.",
    "",
    "| Quantization | Bits per weight |",
    "|---|---:|",
    "| 4-bit, group 64 | 4.5 |",
    "| 8-bit, group 64 | 8.5 |",
    "",
    "For example, `mlx_lm.generate --max-tokens 128` prints both figures at the end.",
  ].join("\n");
}

/** Splits text into word-ish tokens, keeping whitespace, like a tokenizer's pieces. */
function tokenize(text: string): string[] {
  return text.match(/\s*\S{1,6}|\s+/g) ?? [];
}

type Generation = { timer: ReturnType<typeof setTimeout> | null; stop: () => void };

/** See the module comment: a stand-in for the Rust backend in a plain browser. */
export class MockBackend implements Backend {
  readonly isMock = true;
  /** Milliseconds between streamed tokens. */
  tokenIntervalMs = 30;

  private listeners = new Map<keyof Events, Set<Listener>>();
  private sessions = new Map<string, ChatSession>();
  private generations = new Map<string, Generation>();
  private installed = new Set<string>();
  private downloads = new Map<string, DownloadProgress & { size: number; timer: ReturnType<typeof setInterval> | null; failedOnce?: boolean }>();
  private quantized = new Map<string, { spec: ModelSpec; quant: string; bits: number; size: number }>();
  private benchRuns: BenchRun[] = [];
  private activeBench: { id: string; cancel: () => void } | null = null;
  private hubToken = false;
  private usedBytes = 9.4 * GB;
  private loaded: string | null = null;
  private random = rng(42);
  private memoryTimer: ReturnType<typeof setInterval>;

  constructor() {
    for (const s of SPECS) for (const v of s.variants) if (v.installed) this.installed.add(`${s.id}@${v.quant}`);
    this.seedSessions();
    this.seedBenchHistory();
    this.memoryTimer = setInterval(() => this.emit("memoryUpdate", this.memorySample()), 1000);
  }

  /** Stops the mock's timers (unit tests). */
  dispose(): void {
    clearInterval(this.memoryTimer);
    for (const g of this.generations.values()) g.stop();
    for (const d of this.downloads.values()) if (d.timer) clearInterval(d.timer);
    this.activeBench?.cancel();
  }

  // ------------------------------------------------------------ events

  async on<K extends keyof Events>(event: K, cb: (payload: Events[K]) => void): Promise<Unlisten> {
    const set = this.listeners.get(event) ?? new Set();
    set.add(cb as Listener);
    this.listeners.set(event, set);
    return () => set.delete(cb as Listener);
  }

  private emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    for (const cb of this.listeners.get(event) ?? []) (cb as (p: Events[K]) => void)(structuredClone(payload));
  }

  // ------------------------------------------------------------ app

  async appInfo(): Promise<AppInfo> {
    return { version: "0.1.0 (mock backend)", os: "browser", backend: "cpu", mlxVersion: "0.32.2" };
  }

  async startupNotices(): Promise<string[]> {
    return [];
  }

  /** How often the UI asked to hide its window (a browser page cannot hide itself). */
  hideCalls = 0;

  async hideWindow(): Promise<void> {
    this.hideCalls++;
  }

  async openView(view: View): Promise<void> {
    location.hash = `#/${view}`;
  }

  async openExternal(url: string): Promise<void> {
    if (!/^https?:/.test(url)) throw err("invalid_input", "Only web links open");
  }

  // ------------------------------------------------------------ chat history

  private seedSessions(): void {
    const now = Date.now();
    const mk = (title: string, ageMs: number, user: string): void => {
      const sid = id("s");
      const t = now - ageMs;
      const a = replyFor(user);
      this.sessions.set(sid, {
        id: sid,
        title,
        model: "smollm2-135m@q4_1",
        createdAtMs: t,
        updatedAtMs: t,
        messages: [
          { id: id("m"), role: "user", content: user, model: null, createdAtMs: t, status: "done", stats: null, error: null },
          {
            id: id("m"),
            role: "assistant",
            content: a,
            model: "smollm2-135m@q4_1",
            createdAtMs: t + 1500,
            status: "done",
            stats: { promptTokens: 38, generatedTokens: tokenize(a).length, ttftMs: 210, tokensPerSecond: 96.4, totalMs: 1500, stopReason: "eos" },
            error: null,
          },
        ],
      });
    };
    mk("Why quantization helps", 26 * 3_600_000, "Why does quantization make models faster?");
    mk("Sum of even numbers in Rust", 3 * 86_400_000, "Write code for a Rust function that sums even numbers");
  }

  private summary(s: ChatSession): SessionSummary {
    const last = s.messages[s.messages.length - 1];
    return {
      id: s.id,
      title: s.title,
      model: s.model,
      updatedAtMs: s.updatedAtMs,
      messageCount: s.messages.length,
      preview: last ? last.content.slice(0, 80) : "",
    };
  }

  private session(id: string): ChatSession {
    const s = this.sessions.get(id);
    if (!s) throw err("not_found", "That chat no longer exists");
    return s;
  }

  async listSessions(): Promise<SessionSummary[]> {
    return [...this.sessions.values()].sort((a, b) => b.updatedAtMs - a.updatedAtMs).map((s) => this.summary(s));
  }

  async searchSessions(query: string): Promise<SearchHit[]> {
    const q = query.trim().toLowerCase();
    if (!q) return [];
    const hits: SearchHit[] = [];
    for (const s of this.sessions.values()) {
      const m = s.messages.find((x) => x.content.toLowerCase().includes(q)) ?? null;
      if (m || s.title.toLowerCase().includes(q)) {
        const text = m?.content ?? s.title;
        const at = Math.max(0, text.toLowerCase().indexOf(q) - 30);
        hits.push({ session: this.summary(s), messageId: m?.id ?? "", snippet: text.slice(at, at + 90) });
      }
    }
    return hits;
  }

  async openSession(id: string): Promise<ChatSession> {
    return structuredClone(this.session(id));
  }

  async createSession(model: string | null): Promise<ChatSession> {
    const now = Date.now();
    const s: ChatSession = { id: id("s"), title: "New chat", model, createdAtMs: now, updatedAtMs: now, messages: [] };
    this.sessions.set(s.id, s);
    return structuredClone(s);
  }

  async deleteSession(id: string): Promise<void> {
    this.session(id);
    this.sessions.delete(id);
  }

  async exportSessionMarkdown(id: string): Promise<MarkdownExport> {
    const s = this.session(id);
    const body = s.messages.map((m) => `## ${m.role === "user" ? "You" : (m.model ?? "Assistant")}\n\n${m.content}\n`).join("\n");
    const slug = s.title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "chat";
    return { fileName: `${slug}.md`, markdown: `# ${s.title}\n\n${body}` };
  }

  // ------------------------------------------------------------ generation

  private checkModel(model: string): void {
    if (!this.installed.has(model)) {
      throw err(this.installed.size ? "not_found" : "no_model", `Model ${model} is not installed`);
    }
  }

  private startReply(s: ChatSession, model: string, prompt: string, userMessageId: string | null): GenerationStarted {
    const requestId = id("r");
    const assistant: ChatMessage = {
      id: id("m"),
      role: "assistant",
      content: "",
      model,
      createdAtMs: Date.now(),
      status: "streaming",
      stats: null,
      error: null,
    };
    s.messages.push(assistant);
    s.updatedAtMs = Date.now();
    this.loaded = model;
    const tokens = tokenize(replyFor(prompt));
    const fails = prompt.includes("/error");
    const started = performance.now();
    let first = 0;
    let index = 0;
    const base = { requestId, sessionId: s.id, messageId: assistant.id };
    const stats = (stopReason: "eos" | "stopped" | "error") => {
      const total = performance.now() - started;
      const decode = Math.max(1, total - first) / 1000;
      return {
        promptTokens: 24 + Math.round(prompt.length / 4),
        generatedTokens: index,
        ttftMs: Math.round(first),
        tokensPerSecond: index > 1 ? (index - 1) / decode : 0,
        totalMs: Math.round(total),
        stopReason,
      };
    };
    const finish = (stopReason: "eos" | "stopped") => {
      const st = stats(stopReason);
      assistant.status = stopReason === "stopped" ? "stopped" : "done";
      assistant.stats = st;
      this.generations.delete(requestId);
      this.emit("chatEvent", { kind: "done", ...base, stats: st });
    };
    const gen: Generation = { timer: null, stop: () => {} };
    const step = () => {
      if (fails && index === 3) {
        const error: AppError = { kind: "engine", message: "The engine stopped: Metal command buffer failed (mock)" };
        assistant.status = "error";
        assistant.error = error;
        this.generations.delete(requestId);
        this.emit("chatEvent", { kind: "error", ...base, error, stats: stats("error") });
        return;
      }
      if (index >= tokens.length) return finish("eos");
      if (index === 0) first = performance.now() - started;
      const text = tokens[index];
      assistant.content += text;
      this.emit("chatEvent", { kind: "token", ...base, index, text });
      index++;
      gen.timer = setTimeout(step, this.tokenIntervalMs);
    };
    gen.stop = () => {
      if (gen.timer) clearTimeout(gen.timer);
      finish("stopped");
    };
    this.generations.set(requestId, gen);
    setTimeout(() => {
      this.emit("chatEvent", { kind: "started", ...base, model });
      gen.timer = setTimeout(step, 180);
    }, 0);
    return { requestId, sessionId: s.id, userMessageId, assistantMessageId: assistant.id };
  }

  async sendMessage(req: SendRequest): Promise<GenerationStarted> {
    if (!req.content.trim()) throw err("invalid_input", "The message is empty");
    this.checkModel(req.model);
    const s = this.session(req.sessionId);
    const user: ChatMessage = {
      id: id("m"),
      role: "user",
      content: req.content,
      model: null,
      createdAtMs: Date.now(),
      status: "done",
      stats: null,
      error: null,
    };
    s.messages.push(user);
    s.model = req.model;
    if (s.title === "New chat") s.title = req.content.trim().split("\n")[0].slice(0, 48);
    return this.startReply(s, req.model, req.content, user.id);
  }

  async regenerate(sessionId: string, model: string, _params: SamplingParams | null): Promise<GenerationStarted> {
    this.checkModel(model);
    const s = this.session(sessionId);
    while (s.messages.length && s.messages[s.messages.length - 1].role === "assistant") s.messages.pop();
    const lastUser = s.messages[s.messages.length - 1];
    if (!lastUser) throw err("invalid_input", "Nothing to regenerate");
    return this.startReply(s, model, lastUser.content, null);
  }

  async editAndResend(
    sessionId: string,
    messageId: string,
    content: string,
    model: string,
    _params: SamplingParams | null,
  ): Promise<GenerationStarted> {
    this.checkModel(model);
    const s = this.session(sessionId);
    const at = s.messages.findIndex((m) => m.id === messageId && m.role === "user");
    if (at < 0) throw err("not_found", "That message no longer exists");
    s.messages = s.messages.slice(0, at + 1);
    s.messages[at].content = content;
    return this.startReply(s, model, content, messageId);
  }

  async stopGeneration(requestId: string): Promise<void> {
    this.generations.get(requestId)?.stop();
  }

  // ------------------------------------------------------------ models

  private memorySample(): MachineMemory {
    this.usedBytes = Math.min(14 * GB, Math.max(7 * GB, this.usedBytes + (this.random() - 0.5) * 0.2 * GB));
    const model = this.loaded ? this.variantSize(this.loaded) : 0;
    const used = this.usedBytes + model;
    return {
      totalBytes: TOTAL,
      availableBytes: TOTAL - used,
      usedBytes: used,
      swapUsedBytes: 0.3 * GB,
      pressure: used > 0.85 * TOTAL ? "critical" : used > 0.7 * TOTAL ? "warning" : "normal",
      gpuLimitBytes: GPU_LIMIT,
      minibarModelBytes: model,
      loadedModel: this.loaded,
      timestampMs: Date.now(),
    };
  }

  private variantSize(variantId: string): number {
    const [mid, quant] = variantId.split("@");
    const spec = SPECS.find((s) => s.id === mid);
    const v = spec?.variants.find((x) => x.quant === quant) ?? this.quantized.get(variantId);
    return v ? ("size" in v ? v.size : 0) : 0;
  }

  /**
   * The browser mock's stand-in for the app's verdict (minibar-fit's `assess` in Rust), with the
   * same thresholds: fits when at least 10% of the usable memory or the headroom setting (the
   * larger) stays free, tight when it fits at all.
   */
  private fitFor(spec: ModelSpec, size: number): FitReport {
    const settings = this.readSettings();
    const ctx = Math.min(settings?.contextLength ?? 4096, spec.contextLength);
    const headroom = settings?.memoryHeadroomBytes ?? 2 * GB;
    const kv = spec.kvPerToken * ctx;
    const overhead = OVERHEAD + 0.02 * size;
    const inUse = Math.min(this.memorySample().usedBytes, GPU_LIMIT);
    const usable = GPU_LIMIT - inUse;
    const need = size + kv + overhead;
    const comfortable = usable - Math.max(0.1 * usable, headroom);
    const verdict = need <= comfortable ? "fits" : need <= usable ? "tight" : "wont_fit";
    const free = usable - size - overhead;
    const maxContext = free > 0 ? Math.min(spec.contextLength, Math.floor(free / spec.kvPerToken)) : 0;
    const gb = (n: number) => `${(n / GB).toFixed(1)} GB`;
    const reason =
      verdict === "fits"
        ? `needs ${gb(need)} of ${gb(usable)}; ${gb(usable - need)} to spare`
        : verdict === "tight"
          ? `needs ${gb(need)} of ${gb(usable)}: only ${gb(usable - need)} to spare, less than the ${gb(usable - comfortable)} kept free`
          : `needs ${gb(need)}, ${gb(need - usable)} more than the GPU working-set limit (${gb(usable)})`;
    return {
      verdict,
      reason,
      headroomBytes: usable - need,
      maxContext,
      neededBytes: need,
      usableBytes: usable,
      comfortableBytes: comfortable,
      thresholds: { comfortMargin: 0.1, headroomBytes: headroom },
      breakdown: { weightsBytes: size, kvCacheBytes: kv, overheadBytes: overhead, inUseBytes: inUse, budgetBytes: GPU_LIMIT },
      across: null,
    };
  }

  /** The mock's what-if table: `fitFor`'s stand-in rule on each Mac size, nothing else running. */
  async whatIfTable(context: number, kvBits: number | null): Promise<WhatIfTable> {
    const sizesGb = [8, 16, 18, 24, 32, 36, 48, 64, 96, 128, 192, 256, 512];
    const kvScale = kvBits ? (kvBits + 1) / 16 : 1;
    const rows = SPECS.filter((s) => !s.notYet).flatMap((spec) =>
      spec.variants.map((v) => {
        const fixed = v.size + OVERHEAD + 0.02 * v.size;
        const perToken = spec.kvPerToken * kvScale;
        const need = fixed + perToken * Math.min(context, spec.contextLength);
        return {
          modelId: spec.id,
          name: spec.name,
          quant: v.quant,
          paramsB: spec.paramsB,
          neededBytes: need,
          cells: sizesGb.map((ramGb) => {
            const usable = ramGb * 2 ** 30 * (ramGb >= 36 ? 0.75 : 2 / 3);
            const verdict: FitVerdict = need <= 0.9 * usable ? "fits" : need <= usable ? "tight" : "wont_fit";
            const maxContext = usable > fixed ? Math.min(spec.contextLength, Math.floor((usable - fixed) / perToken)) : 0;
            return { ramGb, verdict, maxContext };
          }),
        };
      }),
    );
    return { context, kvBits, sizesGb, thresholds: { comfortMargin: 0.1, headroomBytes: 0 }, rows };
  }

  async listCatalog(): Promise<CatalogModel[]> {
    return SPECS.map((spec) => {
      const variants: ModelVariant[] = spec.variants.map((v) => {
        const vid = `${spec.id}@${v.quant}`;
        const d = this.downloads.get(vid);
        return {
          id: vid,
          modelId: spec.id,
          quant: v.quant,
          bitsPerWeight: v.bits,
          sizeBytes: v.size,
          fit: this.fitFor(spec, v.size),
          installed: this.installed.has(vid),
          unverifiedFiles: [],
          download: d ? this.progressOf(d) : null,
        };
      });
      for (const [vid, q] of this.quantized) {
        if (q.spec.id !== spec.id) continue;
        variants.push({
          id: vid,
          modelId: spec.id,
          quant: q.quant,
          bitsPerWeight: q.bits,
          sizeBytes: q.size,
          fit: this.fitFor(spec, q.size),
          installed: this.installed.has(vid),
          unverifiedFiles: [],
          download: null,
        });
      }
      return {
        id: spec.id,
        name: spec.name,
        family: spec.family,
        paramsB: spec.paramsB,
        description: spec.description,
        contextLength: spec.contextLength,
        support: { runs: !spec.notYet, reason: spec.notYet ?? null },
        variants,
      };
    });
  }

  async memoryStatus(): Promise<MachineMemory> {
    return this.memorySample();
  }

  async diskUsage(): Promise<DiskUsage> {
    let modelsBytes = 0;
    for (const vid of this.installed) modelsBytes += this.variantSize(vid);
    return { folder: (await this.libraryFolders()).hfCacheFolder, modelsBytes, freeBytes: 212 * GB, totalBytes: 494 * GB };
  }

  async libraryFolders(): Promise<LibraryFolders> {
    const defaults = {
      defaultModelsFolder: "~/Library/Application Support/Minibar/models",
      defaultHfCacheFolder: "~/.cache/huggingface/hub",
    };
    const s = this.readSettings();
    return {
      ...defaults,
      modelsFolder: s?.modelsFolder?.trim() || defaults.defaultModelsFolder,
      hfCacheFolder: s?.hfCacheFolder?.trim() || defaults.defaultHfCacheFolder,
    };
  }

  private progressOf(d: DownloadProgress): DownloadProgress {
    const { variantId, state, downloadedBytes, totalBytes, bytesPerSecond, etaSeconds, error } = d;
    return { variantId, state, downloadedBytes, totalBytes, bytesPerSecond, etaSeconds, error };
  }

  private runDownload(variantId: string): void {
    const d = this.downloads.get(variantId);
    if (!d) return;
    if (d.timer) clearInterval(d.timer);
    d.state = "downloading";
    d.error = null;
    const tickMs = 200;
    // Scaled so any size finishes in about eight seconds: the point is the progress, not the wait.
    const total = d.size;
    d.totalBytes = total;
    const base = total / 8;
    d.timer = setInterval(() => {
      const speed = base * (0.85 + this.random() * 0.3);
      d.bytesPerSecond = speed;
      d.downloadedBytes = Math.min(total, d.downloadedBytes + (speed * tickMs) / 1000);
      d.etaSeconds = (total - d.downloadedBytes) / speed;
      if (variantId === "gemma-3-12b@4bit" && !d.failedOnce && d.downloadedBytes >= 0.6 * total) {
        d.failedOnce = true;
        clearInterval(d.timer!);
        d.timer = null;
        d.state = "failed";
        d.bytesPerSecond = 0;
        d.etaSeconds = null;
        d.error = { kind: "download", message: "Checksum mismatch in model-00002-of-00002.safetensors (mock)" };
      } else if (d.downloadedBytes >= total) {
        clearInterval(d.timer!);
        d.timer = null;
        d.state = "done";
        d.bytesPerSecond = 0;
        d.etaSeconds = 0;
        this.installed.add(variantId);
      }
      this.emit("downloadProgress", this.progressOf(d));
    }, tickMs);
  }

  /** The mock hub: mlx-community conversions of the mock catalog whose name matches. */
  async searchHub(query: string): Promise<HubModel[]> {
    const q = query.trim().toLowerCase();
    if (!q) return [];
    return SPECS.filter((s) => `${s.id} ${s.name}`.toLowerCase().includes(q)).flatMap((spec) =>
      spec.variants.map((v) => ({
        repoId: `mlx-community/${spec.id}-${v.quant}`,
        downloads: 1000,
        formats: ["mlx", "safetensors"],
        modelType: spec.notYet ? "qwen3_moe" : "llama",
        weightsBytes: v.size,
        support: { runs: !spec.notYet, reason: spec.notYet ?? null },
        fit: this.fitFor(spec, v.size),
        note: null,
      })),
    );
  }

  async downloadRepo(repoId: string, confirmed?: boolean): Promise<DownloadProgress> {
    const found = SPECS.flatMap((spec) => spec.variants.map((v) => ({ spec, v }))).find(({ spec, v }) => `mlx-community/${spec.id}-${v.quant}` === repoId);
    if (!found) throw err("not_found", `No such repository ${repoId}`);
    if (found.spec.notYet) throw err("invalid_input", `${repoId} is not supported yet: ${found.spec.notYet}`);
    return this.queueDownload(repoId, found.spec, found.v.size, confirmed);
  }

  async startDownload(variantId: string, confirmed?: boolean): Promise<DownloadProgress> {
    const size = this.variantSize(variantId);
    if (!size) throw err("not_found", `Unknown model ${variantId}`);
    const spec = SPECS.find((s) => s.id === variantId.split("@")[0]);
    if (spec?.notYet) throw err("invalid_input", `${spec.name} is not supported yet: ${spec.notYet}`);
    if (this.installed.has(variantId)) throw err("invalid_input", "Already installed");
    return this.queueDownload(variantId, spec, size, confirmed);
  }

  /** As the backend: a model that won't fit stops before downloading until the user confirms. */
  private queueDownload(id: string, spec: ModelSpec | undefined, size: number, confirmed?: boolean): DownloadProgress {
    // As the backend: the total is unknown (null) until the download is planned.
    const d: DownloadProgress & { size: number; timer: ReturnType<typeof setInterval> | null } = { variantId: id, state: "queued", downloadedBytes: 0, totalBytes: null, bytesPerSecond: 0, etaSeconds: null, error: null, size, timer: null };
    this.downloads.set(id, d);
    const fit = spec ? this.fitFor(spec, size) : null;
    if (!confirmed && fit?.verdict === "wont_fit") {
      d.state = "failed";
      d.error = { kind: "needs_confirmation", message: `the model will not fit in memory: ${fit.reason}. Nothing was downloaded; "Download anyway" goes ahead.` };
      setTimeout(() => this.emit("downloadProgress", this.progressOf(d)), 0);
      return this.progressOf(d);
    }
    this.runDownload(id);
    return this.progressOf(d);
  }

  private download(variantId: string) {
    const d = this.downloads.get(variantId);
    if (!d) throw err("not_found", "No such download");
    return d;
  }

  async pauseDownload(variantId: string): Promise<void> {
    const d = this.download(variantId);
    if (d.timer) clearInterval(d.timer);
    d.timer = null;
    d.state = "paused";
    d.bytesPerSecond = 0;
    d.etaSeconds = null;
    this.emit("downloadProgress", this.progressOf(d));
  }

  async resumeDownload(variantId: string): Promise<void> {
    this.download(variantId);
    this.runDownload(variantId);
  }

  async cancelDownload(variantId: string): Promise<void> {
    const d = this.download(variantId);
    if (d.timer) clearInterval(d.timer);
    d.timer = null;
    d.state = "cancelled";
    d.downloadedBytes = 0;
    d.bytesPerSecond = 0;
    d.etaSeconds = null;
    this.emit("downloadProgress", this.progressOf(d));
    this.downloads.delete(variantId);
  }

  async deleteModel(variantId: string): Promise<void> {
    if (!this.installed.delete(variantId)) throw err("not_found", "Not installed");
    this.downloads.delete(variantId);
    this.quantized.delete(variantId);
    if (this.loaded === variantId) this.loaded = null;
  }

  /** Quantizations in flight, by the variant they produce. */
  private quantizeJobs = new Map<string, () => void>();
  /** Milliseconds between quantization progress steps (browser tests slow it down). */
  quantizeIntervalMs = 250;

  async quantizeModel(req: QuantizeRequest): Promise<string> {
    if (!this.installed.has(req.sourceVariantId)) throw err("not_found", "Install the model first");
    const [mid] = req.sourceVariantId.split("@");
    const spec = SPECS.find((s) => s.id === mid)!;
    // The shell's naming: mlx-lm's default group of 64 is implied.
    const quant = req.groupSize === 64 ? `${req.bits}bit` : `${req.bits}bit-g${req.groupSize}`;
    const variantId = `${mid}@${quant}`;
    if (this.installed.has(variantId)) throw err("invalid_input", `${variantId} is already installed.`);
    const bits = req.bits + 32 / req.groupSize;
    const size = Math.round(spec.paramsB * 1e9 * (bits / 8));
    const progress = (state: QuantizeProgress["state"], fraction: number, step: string) =>
      this.emit("quantizeProgress", { variantId, sourceVariantId: req.sourceVariantId, state, fraction, step, error: null });
    let fraction = 0;
    const t = setInterval(() => {
      fraction = Math.min(1, fraction + 0.1);
      const done = fraction >= 1;
      if (done) {
        clearInterval(t);
        this.quantizeJobs.delete(variantId);
        if (!spec.variants.some((v) => v.quant === quant)) this.quantized.set(variantId, { spec, quant, bits, size });
        this.installed.add(variantId);
      }
      progress(done ? "done" : "running", fraction, done ? "done" : `${req.bits} bits, groups of ${req.groupSize}`);
    }, this.quantizeIntervalMs);
    this.quantizeJobs.set(variantId, () => {
      clearInterval(t);
      this.quantizeJobs.delete(variantId);
      progress("cancelled", 0, "cancelled");
    });
    return variantId;
  }

  async cancelQuantize(variantId: string): Promise<void> {
    const cancel = this.quantizeJobs.get(variantId);
    if (!cancel) throw err("not_found", `no quantization of ${variantId} is running`);
    cancel();
  }

  // ------------------------------------------------------------ benchmark

  private fakeRun(mode: BenchMode, startedAtMs: number, scale: number): BenchRun {
    const r = rng(startedAtMs % 100000);
    const jitter = (x: number) => x * (0.97 + r() * 0.06);
    const stat = (mean: number) => ({ mean: jitter(mean), std: mean * (0.01 + r() * 0.03), n: 5 });
    const bandwidth = 38.5 * scale;
    const ladder = SPECS.flatMap((s) => s.variants.map((v) => ({ s, v }))).filter(({ s, v }) => this.installed.has(`${s.id}@${v.quant}`) || (s.id === "smollm2-135m" && v.quant === "q4_1"));
    const models: BenchModelResult[] = ladder.map(({ s, v }) => {
      const roofline = (bandwidth * GB) / v.size;
      const tg = Math.min(roofline * 0.32, 140) * scale;
      return {
        variantId: `${s.id}@${v.quant}`,
        name: s.name.replace(" Instruct", ""),
        modelType: "llama",
        params: Math.round(s.paramsB * 1e9),
        bitsPerWeight: v.bits,
        weightBytes: v.size,
        dequantized: false,
        pp512: stat((2.2e10 / (s.paramsB * 1e9)) * 0.7 * scale),
        tg128: stat(tg),
        tgDepth4096: mode === "full" ? stat(tg * 0.78) : null,
        ttftMs: stat((512 / ((2.2e10 / (s.paramsB * 1e9)) * 0.7)) * 1000),
        peakMemoryBytes: v.size + OVERHEAD * 0.4,
        rooflineTps: roofline,
        efficiency: tg / roofline,
      };
    });
    const batch: BatchPoint[] = [1, 2, 4, 8, 16, 32].map((b) => {
      const timeRatio = b === 1 ? 1 : 1 + (b - 1) * 0.26 * (0.95 + r() * 0.1);
      const wall = 1.33 * timeRatio;
      return { batch: b, totalTps: (128 * b) / wall, wallSeconds: wall, timeRatio, workRatio: b };
    }).filter((p) => mode === "full" || [1, 4, 16].includes(p.batch));
    return {
      id: id("bench"),
      startedAtMs,
      mode,
      machine: { chip: "AMD EPYC (mock)", cpuCores: 2, physicalCores: 2, gpuCores: null, memoryBytes: TOTAL, os: "Debian 12", mlxVersion: "0.32.2", backend: "cpu", bandwidthGBs: bandwidth },
      minibarVersion: "0.1.0",
      repetitions: mode === "quick" ? 2 : 5,
      defaultModel: "smollm2-135m@q4_1",
      models,
      batch,
      batchGenTokens: mode === "quick" ? 16 : 128,
      skipped: [],
    };
  }

  private seedBenchHistory(): void {
    const now = Date.now();
    this.benchRuns = [
      this.fakeRun("quick", now - 20 * 86_400_000, 0.92),
      this.fakeRun("full", now - 9 * 86_400_000, 0.97),
      this.fakeRun("quick", now - 2 * 86_400_000, 1.0),
    ];
  }

  private benchSummary(r: BenchRun): BenchRunSummary {
    const d = r.models.find((m) => m.variantId === r.defaultModel) ?? r.models[0];
    return { id: r.id, startedAtMs: r.startedAtMs, mode: r.mode, chip: r.machine.chip, defaultModel: r.defaultModel, pp512: d?.pp512.mean ?? 0, tg128: d?.tg128.mean ?? 0 };
  }

  async startBenchmark(mode: BenchMode): Promise<string> {
    if (this.activeBench) throw err("invalid_input", "A benchmark is already running");
    const runId = id("bench");
    const names = [...this.installed];
    const steps = [
      "Machine and versions",
      "Memory bandwidth (copy, triad)",
      ...names.flatMap((n) => [`pp512 · ${n}`, `tg128 · ${n}`]),
      ...(mode === "full" ? names.map((n) => `tg128 at depth 4096 · ${n}`) : []),
      ...(mode === "full" ? [1, 2, 4, 8, 16, 32] : [1, 4, 16]).map((b) => `Batch ${b}`),
    ];
    let i = 0;
    const started = Date.now();
    const t = setInterval(() => {
      if (i < steps.length) {
        const lastSample = i > 1 ? { model: "SmolLM2-135M-Instruct.Q4_1", test: steps[i].split(" ")[0], tokensPerSecond: 100 + i } : null;
        this.emit("benchProgress", { runId, step: steps[i], stepIndex: i, stepCount: steps.length, fraction: i / steps.length, lastSample });
        i++;
        return;
      }
      clearInterval(t);
      this.activeBench = null;
      const run = { ...this.fakeRun(mode, started, 1.0), id: runId };
      this.benchRuns.push(run);
      this.emit("benchProgress", { runId, step: "Done", stepIndex: steps.length, stepCount: steps.length, fraction: 1, lastSample: null });
      this.emit("benchFinished", { runId, status: "done", run, error: null });
    }, 350);
    this.activeBench = {
      id: runId,
      cancel: () => {
        clearInterval(t);
        this.activeBench = null;
        this.emit("benchFinished", { runId, status: "cancelled", run: null, error: null });
      },
    };
    return runId;
  }

  async cancelBenchmark(runId: string): Promise<void> {
    if (this.activeBench?.id === runId) this.activeBench.cancel();
  }

  async listBenchRuns(): Promise<BenchRunSummary[]> {
    return this.benchRuns.map((r) => this.benchSummary(r));
  }

  async getBenchRun(id: string): Promise<BenchRun> {
    const r = this.benchRuns.find((x) => x.id === id);
    if (!r) throw err("not_found", "No such run");
    return structuredClone(r);
  }

  async benchReference(): Promise<ReferenceFigure[]> {
    return structuredClone(REFERENCE);
  }

  async exportBenchRun(id: string, format: BenchExportFormat): Promise<string> {
    const r = await this.getBenchRun(id);
    const rows = r.models.map((m) => [m.name, m.bitsPerWeight, "pp512", m.pp512.mean, m.pp512.std, "tg128", m.tg128.mean, m.tg128.std]);
    if (format === "json") return JSON.stringify(r, null, 2);
    if (format === "csv") return ["model_type,bpw,test,avg_ts,stddev_ts", ...rows.flatMap((x) => [`${x[0]},${x[1]},pp512,${x[3]},${x[4]}`, `${x[0]},${x[1]},tg128,${x[6]},${x[7]}`])].join("\n");
    return ["| model | test | t/s |", "|---|---|---:|", ...r.models.flatMap((m) => [`| ${m.name} | pp512 | ${m.pp512.mean.toFixed(2)} ± ${m.pp512.std.toFixed(2)} |`, `| ${m.name} | tg128 | ${m.tg128.mean.toFixed(2)} ± ${m.tg128.std.toFixed(2)} |`])].join("\n");
  }

  // ------------------------------------------------------------ settings

  private readSettings(): Settings | null {
    try {
      const raw = localStorage.getItem(SETTINGS_KEY);
      return raw ? (JSON.parse(raw) as Settings) : null;
    } catch {
      return null;
    }
  }

  async loadSettings(): Promise<Settings | null> {
    return this.readSettings();
  }

  async saveSettings(settings: Settings): Promise<void> {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  }

  async setHubToken(token: string | null): Promise<void> {
    // The real backend writes the OS keychain; the mock keeps only whether one was set.
    this.hubToken = !!token;
  }

  async hasHubToken(): Promise<boolean> {
    return this.hubToken;
  }

  async setLaunchAtLogin(_enabled: boolean): Promise<void> {}

  async setLocalServer(enabled: boolean, port: number): Promise<LocalServerStatus> {
    // The real backend starts minibar-serve; the mock has no server and says so when asked to
    // start one, rather than showing an address nothing answers on.
    if (enabled) throw new ApiError({ kind: "io", message: "The local server needs the Minibar app (this is the browser mock)." });
    const saved = this.readSettings();
    if (saved) localStorage.setItem(SETTINGS_KEY, JSON.stringify({ ...saved, localServer: false, localServerPort: port }));
    return { running: false, url: null, error: null };
  }

  async localServerStatus(): Promise<LocalServerStatus> {
    return { running: false, url: null, error: null };
  }

  /** The mock has no cluster: the app's answer when none is up. */
  async clusterStatus(): Promise<ClusterStatus> {
    return {
      up: false,
      socket: "/tmp/minibar/cluster.sock",
      model: null,
      nodes: [],
      note: "No cluster is up: start one with `minibar cluster up -m MODEL --ranks 2` (this machine), or `minibar cluster up -m MODEL --discover N` on each of N Macs.",
    };
  }
}
