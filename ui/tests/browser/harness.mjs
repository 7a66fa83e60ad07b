// Serves the built UI (ui/dist) on 127.0.0.1 under the CSP the Tauri shell must set, and drives it
// with Debian's Chromium through playwright-core. No browser downloads, nothing leaves the machine.
import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const UI = fileURLToPath(new URL("../..", import.meta.url));
const DIST = join(UI, "dist");
export const SCREENSHOTS = join(UI, "test-results", "screenshots");

/** The Content-Security-Policy the Tauri shell sets (tauri.conf.json app.security.csp). */
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self' ipc: http://ipc.localhost",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** @type {Record<string, string>} */
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json" };

/** Starts the static server on a free port. */
export async function serve() {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    const file = join(DIST, path === "/" ? "index.html" : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Content-Security-Policy": CSP });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(() => r(undefined))) };
}

/** Launches headless Chromium from the system. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Popover and window sizes, as the shell creates them. */
export const POPOVER = { width: 380, height: 560 };
export const WINDOW = { width: 1100, height: 780 };

/**
 * Opens the UI at a route in a fresh context and records console errors, page errors, CSP
 * violations and any request that leaves 127.0.0.1 (there must be none).
 * @param {import("playwright-core").Browser} browser
 * @param {string} base
 * @param {string} route
 * @param {{ viewport?: { width: number, height: number }, colorScheme?: "light" | "dark" }} [options]
 */
export async function open(browser, base, route, { viewport = POPOVER, colorScheme = "light" } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, permissions: [] });
  const page = await context.newPage();
  /** @type {string[]} */
  const problems = [];
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (!["127.0.0.1", ""].includes(u.hostname) && u.protocol !== "blob:" && u.protocol !== "data:") problems.push(`remote request: ${r.url()}`);
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(base + route);
  await page.locator(".toolbar").waitFor();
  // The mock backend is imported lazily and can arrive after the first paint; tests that tune
  // it (token or quantization pace) must not race it.
  await page.waitForFunction(() => "__MINIBAR_MOCK__" in window);
  return { page, context, problems };
}

/**
 * Saves a screenshot under test-results/screenshots.
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
export async function shot(page, name) {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}
