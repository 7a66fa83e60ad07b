/**
 * The only door to the backend. Views call `api()`; nothing else talks to Tauri.
 *
 * In the app, `window.__TAURI_INTERNALS__` exists and every call goes through Tauri's IPC
 * (`bindings.ts` commands and events, settings through tauri-plugin-store). In a plain browser
 * (Vite dev server, the browser tests) there is no Rust side, so `mock.ts`, a stand-in for the
 * Rust backend used only for UI development and tests, is loaded instead and the UI shows a
 * "mock backend" badge.
 */
import {
  commands,
  events,
  SETTINGS_STORE,
  type AppError,
  type AppErrorKind,
  type AppInfo,
  type BenchExportFormat,
  type BenchMode,
  type BenchRun,
  type BenchRunSummary,
  type CatalogModel,
  type ClusterStatus,
  type ChatSession,
  type DiskUsage,
  type LibraryFolders,
  type LocalServerStatus,
  type DownloadProgress,
  type Events,
  type GenerationStarted,
  type HubModel,
  type MachineMemory,
  type MarkdownExport,
  type QuantizeRequest,
  type ReferenceFigure,
  type Result,
  type SamplingParams,
  type SearchHit,
  type SendRequest,
  type SessionSummary,
  type Settings,
  type View,
  type WhatIfTable,
} from "./bindings";

/** A failed backend call, carrying the backend's error kind. */
export class ApiError extends Error {
  readonly kind: AppErrorKind;
  constructor(error: AppError) {
    super(error.message);
    this.name = "ApiError";
    this.kind = error.kind;
  }
}

/** Stops listening to an event. */
export type Unlisten = () => void;

/** Everything the UI can ask of the backend; implemented by the Tauri IPC and by the mock. */
export interface Backend {
  /** True for the browser-only mock, so the UI can label itself. */
  readonly isMock: boolean;
  appInfo(): Promise<AppInfo>;
  /** What went wrong at start that the user should know (a damaged history set aside). */
  startupNotices(): Promise<string[]>;
  listSessions(): Promise<SessionSummary[]>;
  searchSessions(query: string): Promise<SearchHit[]>;
  openSession(id: string): Promise<ChatSession>;
  createSession(model: string | null): Promise<ChatSession>;
  deleteSession(id: string): Promise<void>;
  exportSessionMarkdown(id: string): Promise<MarkdownExport>;
  sendMessage(request: SendRequest): Promise<GenerationStarted>;
  regenerate(sessionId: string, model: string, params: SamplingParams | null): Promise<GenerationStarted>;
  editAndResend(
    sessionId: string,
    messageId: string,
    content: string,
    model: string,
    params: SamplingParams | null,
  ): Promise<GenerationStarted>;
  stopGeneration(requestId: string): Promise<void>;
  listCatalog(): Promise<CatalogModel[]>;
  /** Which Mac runs what: the runnable catalog on every Mac memory size, judged in Rust. */
  whatIfTable(context: number, kvBits: number | null): Promise<WhatIfTable>;
  memoryStatus(): Promise<MachineMemory>;
  diskUsage(): Promise<DiskUsage>;
  /** The model folders in use and their defaults. */
  libraryFolders(): Promise<LibraryFolders>;
  /** `confirmed` goes ahead despite the backend's pre-download concerns (memory, disk). */
  startDownload(variantId: string, confirmed?: boolean): Promise<DownloadProgress>;
  /** Models on the hub matching `query`, each judged in Rust before any download. */
  searchHub(query: string): Promise<HubModel[]>;
  /** Downloads a hub repository found by `searchHub`; its id is the download's id. */
  downloadRepo(repoId: string, confirmed?: boolean): Promise<DownloadProgress>;
  pauseDownload(variantId: string): Promise<void>;
  resumeDownload(variantId: string): Promise<void>;
  cancelDownload(variantId: string): Promise<void>;
  deleteModel(variantId: string): Promise<void>;
  quantizeModel(request: QuantizeRequest): Promise<string>;
  cancelQuantize(variantId: string): Promise<void>;
  startBenchmark(mode: BenchMode): Promise<string>;
  cancelBenchmark(runId: string): Promise<void>;
  listBenchRuns(): Promise<BenchRunSummary[]>;
  getBenchRun(id: string): Promise<BenchRun>;
  benchReference(): Promise<ReferenceFigure[]>;
  exportBenchRun(id: string, format: BenchExportFormat): Promise<string>;
  /** The saved settings, or null when nothing was saved yet. */
  loadSettings(): Promise<Settings | null>;
  /** Saves settings and tells the backend to re-read them. */
  saveSettings(settings: Settings): Promise<void>;
  setHubToken(token: string | null): Promise<void>;
  hasHubToken(): Promise<boolean>;
  setLaunchAtLogin(enabled: boolean): Promise<void>;
  /** Turns the local server (OpenAI and Ollama APIs on loopback) on at `port`, or off; saved. */
  setLocalServer(enabled: boolean, port: number): Promise<LocalServerStatus>;
  localServerStatus(): Promise<LocalServerStatus>;
  /** Whether a cluster (`minibar cluster up`) is up, its nodes, model and split. */
  clusterStatus(): Promise<ClusterStatus>;
  hideWindow(): Promise<void>;
  openView(view: View): Promise<void>;
  openExternal(url: string): Promise<void>;
  /** Subscribes to a backend event. */
  on<K extends keyof Events>(event: K, cb: (payload: Events[K]) => void): Promise<Unlisten>;
}

/** Returns the data of a command's result or throws its error as an `ApiError`. */
export function unwrap<T>(result: Result<T, AppError>): T {
  if (result.status === "ok") return result.data;
  throw new ApiError(result.error);
}

/** Turns anything thrown into a message a user can read. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === "object" && e && "message" in e) return String((e as { message: unknown }).message);
  return String(e);
}

/** The error kind of anything thrown, `engine` when unknown. */
export function errorKind(e: unknown): AppErrorKind {
  if (e instanceof ApiError) return e.kind;
  return "engine";
}

/** The backend of the real app: Tauri commands, events and the settings store. */
export function tauriBackend(): Backend {
  const nothing = async (r: Promise<Result<null, AppError>>) => {
    unwrap(await r);
  };
  // The store the app opened at start: the UI may not open one itself (no store:allow-load),
  // so it cannot write a file anywhere else. Looked up on first use, once.
  let opened: Promise<import("@tauri-apps/plugin-store").Store> | null = null;
  const store = () =>
    (opened ??= import("@tauri-apps/plugin-store").then(async ({ getStore }) => {
      const s = await getStore(SETTINGS_STORE.file);
      if (!s) {
        const message = `The settings file ${SETTINGS_STORE.file} could not be opened.`;
        throw new ApiError({ kind: "io", message });
      }
      return s;
    }));
  return {
    isMock: false,
    appInfo: async () => unwrap(await commands.appInfo()),
    startupNotices: async () => unwrap(await commands.startupNotices()),
    listSessions: async () => unwrap(await commands.listSessions()),
    searchSessions: async (q) => unwrap(await commands.searchSessions(q)),
    openSession: async (id) => unwrap(await commands.openSession(id)),
    createSession: async (model) => unwrap(await commands.createSession(model)),
    deleteSession: (id) => nothing(commands.deleteSession(id)),
    exportSessionMarkdown: async (id) => unwrap(await commands.exportSessionMarkdown(id)),
    sendMessage: async (req) => unwrap(await commands.sendMessage(req)),
    regenerate: async (s, m, p) => unwrap(await commands.regenerate(s, m, p)),
    editAndResend: async (s, id, c, m, p) => unwrap(await commands.editAndResend(s, id, c, m, p)),
    stopGeneration: (id) => nothing(commands.stopGeneration(id)),
    listCatalog: async () => unwrap(await commands.listCatalog()),
    whatIfTable: async (context, kvBits) => unwrap(await commands.whatIfTable(context, kvBits)),
    memoryStatus: async () => unwrap(await commands.memoryStatus()),
    diskUsage: async () => unwrap(await commands.diskUsage()),
    libraryFolders: async () => unwrap(await commands.libraryFolders()),
    startDownload: async (id, confirmed) => unwrap(await commands.startDownload(id, confirmed ?? null)),
    searchHub: async (query) => unwrap(await commands.searchHub(query)),
    downloadRepo: async (repoId, confirmed) => unwrap(await commands.downloadRepo(repoId, confirmed ?? null)),
    pauseDownload: (id) => nothing(commands.pauseDownload(id)),
    resumeDownload: (id) => nothing(commands.resumeDownload(id)),
    cancelDownload: (id) => nothing(commands.cancelDownload(id)),
    deleteModel: (id) => nothing(commands.deleteModel(id)),
    quantizeModel: async (req) => unwrap(await commands.quantizeModel(req)),
    cancelQuantize: (id) => nothing(commands.cancelQuantize(id)),
    startBenchmark: async (mode) => unwrap(await commands.startBenchmark(mode)),
    cancelBenchmark: (id) => nothing(commands.cancelBenchmark(id)),
    listBenchRuns: async () => unwrap(await commands.listBenchRuns()),
    getBenchRun: async (id) => unwrap(await commands.getBenchRun(id)),
    benchReference: async () => unwrap(await commands.benchReference()),
    exportBenchRun: async (id, f) => unwrap(await commands.exportBenchRun(id, f)),
    loadSettings: async () => (await (await store()).get<Settings>(SETTINGS_STORE.key)) ?? null,
    saveSettings: async (settings) => {
      const s = await store();
      await s.set(SETTINGS_STORE.key, settings);
      await s.save();
      await nothing(commands.settingsChanged());
    },
    setHubToken: (token) => nothing(commands.setHubToken(token)),
    hasHubToken: async () => unwrap(await commands.hasHubToken()),
    setLaunchAtLogin: (enabled) => nothing(commands.setLaunchAtLogin(enabled)),
    setLocalServer: async (enabled, port) => unwrap(await commands.setLocalServer(enabled, port)),
    localServerStatus: async () => unwrap(await commands.localServerStatus()),
    clusterStatus: async () => unwrap(await commands.clusterStatus()),
    hideWindow: () => nothing(commands.hideWindow()),
    openView: (view) => nothing(commands.openView(view)),
    openExternal: (url) => nothing(commands.openExternal(url)),
    on: async (event, cb) => events[event].listen((e) => cb(e.payload)),
  };
}

/** Whether the page runs inside the Tauri app. */
export function inTauri(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

let current: Backend | null = null;

/** Picks the backend once: Tauri in the app, the mock in a plain browser. */
export async function initApi(): Promise<Backend> {
  if (current) return current;
  if (inTauri()) {
    current = tauriBackend();
  } else {
    const { MockBackend } = await import("./mock");
    const mock = new MockBackend();
    // Browser tests reach the mock here to slow its token stream down.
    (window as unknown as { __MINIBAR_MOCK__: unknown }).__MINIBAR_MOCK__ = mock;
    current = mock;
  }
  return current;
}

/** The backend chosen by `initApi`; throws if called before it. */
export function api(): Backend {
  if (!current) throw new Error("initApi() has not run");
  return current;
}

/** Replaces the backend (unit tests). */
export function setApi(backend: Backend | null): void {
  current = backend;
}
