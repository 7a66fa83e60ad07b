/** The app-wide state every view shares: settings, the catalog, live memory, downloads. */
import { api, errorMessage, initApi } from "./api";
import type { BenchFinished, BenchProgress, CatalogModel, DiskUsage, DownloadProgress, MachineMemory, ModelVariant, QuantizeProgress, Settings } from "./bindings";
import { detectMac } from "./keys";
import { withDefaults, DEFAULT_SETTINGS } from "./settings";

/** How often live memory samples make the catalog's verdicts be fetched again. */
export const VERDICT_REFRESH_MS = 10_000;

/** An installed variant with its model, for the model picker. */
export type InstalledChoice = { model: CatalogModel; variant: ModelVariant };

class AppState {
  ready = $state(false);
  fatal = $state<string | null>(null);
  isMock = $state(false);
  isMac = detectMac();
  settings = $state<Settings>(DEFAULT_SETTINGS);
  memory = $state<MachineMemory | null>(null);
  disk = $state<DiskUsage | null>(null);
  catalog = $state<CatalogModel[]>([]);
  catalogStatus = $state<"loading" | "ready" | "error">("loading");
  catalogError = $state<string | null>(null);
  downloads = $state<Record<string, DownloadProgress>>({});
  quantizing = $state<Record<string, QuantizeProgress>>({});
  /** Quantizations that have ended, so a late command reply does not show them running again. */
  quantizeEnded = new Set<string>();
  /** The running benchmark, kept here so progress survives switching views. */
  benchRunId = $state<string | null>(null);
  benchProgress = $state<BenchProgress | null>(null);
  /** The last `bench-finished` of a run started from this window. */
  benchFinished = $state<BenchFinished | null>(null);
  /** The model the chat uses now; starts as the default model. */
  currentModel = $state<string | null>(null);

  /** Installed variants, smallest first, with the verdicts Rust sent (see `onMemory`). */
  installed: InstalledChoice[] = $derived(
    this.catalog
      .flatMap((model) => model.variants.filter((v) => v.installed).map((variant) => ({ model, variant })))
      .sort((a, b) => a.variant.sizeBytes - b.variant.sizeBytes),
  );

  /** When the catalog (with its verdicts) was last fetched, in ms. */
  private catalogAt = 0;

  /**
   * A memory sample: shown at once; the verdicts, which depend on it, are asked of Rust again
   * at most every `VERDICT_REFRESH_MS` rather than judged here.
   */
  onMemory(m: MachineMemory): void {
    this.memory = m;
    if (this.catalogStatus === "ready" && Date.now() - this.catalogAt >= VERDICT_REFRESH_MS) {
      void this.refreshCatalog();
    }
  }

  /** Finds an installed choice by variant id. */
  choice(variantId: string | null): InstalledChoice | null {
    return this.installed.find((c) => c.variant.id === variantId) ?? null;
  }

  /** Connects to the backend, loads what every view needs and subscribes to live events. */
  async init(): Promise<void> {
    try {
      const backend = await initApi();
      this.isMock = backend.isMock;
      this.settings = withDefaults(await backend.loadSettings());
      await backend.on("memoryUpdate", (m) => this.onMemory(m));
      await backend.on("downloadProgress", (d) => this.onDownload(d));
      await backend.on("quantizeProgress", (q) => this.onQuantize(q));
      await backend.on("benchProgress", (p) => {
        if (p.runId === this.benchRunId) this.benchProgress = p;
      });
      await backend.on("benchFinished", (f) => {
        if (f.runId !== this.benchRunId) return;
        this.benchRunId = null;
        this.benchProgress = null;
        this.benchFinished = f;
      });
      this.memory = await backend.memoryStatus();
      await this.refreshCatalog();
      this.currentModel = this.pickDefault();
      this.ready = true;
    } catch (e) {
      this.fatal = errorMessage(e);
    }
  }

  /** The saved default if installed, else the smallest installed model that fits. */
  pickDefault(): string | null {
    const saved = this.choice(this.settings.defaultModel);
    if (saved) return saved.variant.id;
    return (this.installed.find((c) => c.variant.fit.verdict !== "wont_fit") ?? this.installed[0])?.variant.id ?? null;
  }

  /** Reloads the catalog (verdicts depend on settings) and disk usage. */
  async refreshCatalog(): Promise<void> {
    this.catalogAt = Date.now();
    try {
      const [catalog, disk] = await Promise.all([api().listCatalog(), api().diskUsage()]);
      this.catalog = catalog;
      this.disk = disk;
      for (const m of catalog) for (const v of m.variants) if (v.download) this.downloads[v.id] = v.download;
      this.catalogStatus = "ready";
      this.catalogError = null;
      if (this.currentModel && !this.choice(this.currentModel)) this.currentModel = this.pickDefault();
    } catch (e) {
      this.catalogStatus = "error";
      this.catalogError = errorMessage(e);
    }
  }

  private onDownload(d: DownloadProgress): void {
    if (d.state === "cancelled") delete this.downloads[d.variantId];
    else this.downloads[d.variantId] = d;
    if (d.state === "done" || d.state === "cancelled") void this.refreshCatalog().then(() => {
      if (!this.currentModel) this.currentModel = this.pickDefault();
    });
  }

  private onQuantize(q: QuantizeProgress): void {
    this.quantizing[q.variantId] = q;
    if (q.state !== "running") {
      this.quantizeEnded.add(q.variantId);
      void this.refreshCatalog();
      // A failure stays on its row until dismissed; done and cancelled leave nothing to show.
      if (q.state === "done" || q.state === "cancelled") delete this.quantizing[q.variantId];
    }
  }

  /** Saves settings through the backend and refreshes what depends on them. */
  async saveSettings(next: Settings): Promise<void> {
    await api().saveSettings($state.snapshot(next) as Settings);
    this.settings = next;
    await this.refreshCatalog();
  }
}

/** The one shared state. */
export const app = new AppState();
