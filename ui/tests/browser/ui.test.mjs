// Browser tests of the built UI (ui/dist) in headless Chromium against the mock backend, served
// under the shell's CSP. Every test also checks that nothing logged an error, violated the CSP or
// requested anything off this machine.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { launch, open, serve, shot, POPOVER, WINDOW } from "./harness.mjs";

/** @type {Awaited<ReturnType<typeof serve>>} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {Awaited<ReturnType<typeof open>> | null} */
let session = null;

before(async () => {
  server = await serve();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
});
afterEach(async () => {
  if (!session) return;
  const { context, problems } = session;
  session = null;
  await context.close();
  assert.deepEqual(problems, [], "console errors, CSP violations or remote requests");
});

/**
 * @param {string} route
 * @param {{ viewport?: { width: number, height: number }, colorScheme?: "light" | "dark" }} [options]
 */
async function start(route, options) {
  session = await open(browser, server.url, route, options);
  return session.page;
}

/** @param {import("playwright-core").Page} page @param {number} ms */
async function slowTokens(page, ms) {
  await page.evaluate((v) => {
    /** @type {any} */ (window).__MINIBAR_MOCK__.tokenIntervalMs = v;
  }, ms);
}

/** @param {import("playwright-core").Page} page */
async function newChat(page) {
  await page.getByRole("button", { name: "New chat" }).first().click();
  await page.getByText("Ask anything").waitFor();
}

describe("chat in the popover", () => {
  test("a message streams back a Markdown reply with tokens/s and time to first token", async () => {
    const page = await start("#/chat");
    await page.locator('[data-testid="reply"]').first().waitFor(); // the newest chat opens
    await newChat(page);
    const box = page.getByRole("textbox", { name: "Message" });
    await box.fill("Tell me about quantization");
    await box.press("Enter");
    assert.equal(await box.inputValue(), "", "the composer clears on send");
    await page.locator(".bubble", { hasText: "Tell me about quantization" }).waitFor();
    const reply = page.locator('[data-testid="reply"]').last();
    await page.locator('[data-testid="stop"]').waitFor(); // streaming: Stop replaces Send
    const stats = reply.locator('[data-testid="stats"]');
    await stats.waitFor({ timeout: 20_000 });
    assert.match(await stats.innerText(), /tok\/s/);
    assert.match(await stats.innerText(), /TTFT \d+ ms/);
    assert.equal(await reply.getAttribute("data-status"), "done");
    assert.equal(await reply.locator("table td").first().innerText(), "4-bit, group 64", "Markdown table rendered");
    assert.match(await reply.locator("strong").first().innerText(), /Tell me about quantization/);
    await page.getByRole("button", { name: "Show chats" }).click();
    await page.locator('[data-testid="session"]', { hasText: "Tell me about quantization" }).waitFor();
  });

  test("Shift-Enter adds a line, Enter sends", async () => {
    const page = await start("#/chat");
    await newChat(page);
    const box = page.getByRole("textbox", { name: "Message" });
    await box.click();
    await page.keyboard.type("line one");
    await page.keyboard.press("Shift+Enter");
    await page.keyboard.type("line two");
    assert.equal(await box.inputValue(), "line one\nline two");
    assert.equal(await page.locator(".bubble").count(), 0, "Shift-Enter did not send");
    await page.keyboard.press("Enter");
    await page.locator(".bubble", { hasText: "line two" }).waitFor();
  });

  test("Stop ends a reply mid-stream and keeps what was written", async () => {
    const page = await start("#/chat");
    await newChat(page);
    await slowTokens(page, 150);
    const box = page.getByRole("textbox", { name: "Message" });
    await box.fill("Explain the KV cache");
    await box.press("Enter");
    const reply = page.locator('[data-testid="reply"]').last();
    await reply.locator(".markdown").waitFor();
    await page.locator('[data-testid="stop"]').click();
    await reply.locator('[data-testid="stats"]').waitFor();
    assert.equal(await reply.getAttribute("data-status"), "stopped");
    assert.match(await reply.locator('[data-testid="stats"]').innerText(), /Stopped/);
    const text = await reply.locator(".markdown").innerText();
    assert.ok(text.length > 0, "the partial reply stays");
    assert.doesNotMatch(text, /prints both figures/, "the reply was cut short");
    await page.locator('[data-testid="send"]').waitFor();
  });

  test("Esc stops generation; the keyboard opens and closes the model switcher and starts a chat", async () => {
    const page = await start("#/chat");
    await newChat(page);
    await slowTokens(page, 150);
    const box = page.getByRole("textbox", { name: "Message" });
    await box.fill("Explain batching");
    await box.press("Enter");
    const reply = page.locator('[data-testid="reply"]').last();
    await reply.locator(".markdown").waitFor();
    await page.keyboard.press("Escape");
    await reply.locator('[data-testid="stats"]', { hasText: "Stopped" }).waitFor();

    await page.keyboard.press("Control+K");
    const dialog = page.getByRole("dialog", { name: "Switch model" });
    await dialog.waitFor();
    assert.equal(await dialog.getByRole("option").count(), 2, "both installed models listed");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await dialog.waitFor({ state: "hidden" });
    assert.match(await page.locator('[data-testid="model-picker"]').innerText(), /Qwen3 0.6B/);

    await page.keyboard.press("Control+K");
    await dialog.waitFor();
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });

    await page.keyboard.press("Control+N");
    await page.getByText("Ask anything").waitFor();

    // With nothing streaming and no popup open, Esc asks the shell to hide the window.
    const hides = () => page.evaluate(() => /** @type {any} */ (window).__MINIBAR_MOCK__.hideCalls);
    assert.equal(await hides(), 0);
    await page.keyboard.press("Escape");
    assert.equal(await hides(), 1);
  });

  test("edit and resend replaces the exchange; regenerate writes a new reply with a copyable code block", async () => {
    const page = await start("#/chat");
    await newChat(page);
    const box = page.getByRole("textbox", { name: "Message" });
    await box.fill("hello");
    await box.press("Enter");
    await page.locator('[data-testid="reply"][data-status="done"]').waitFor({ timeout: 20_000 });

    await page.locator(".msg.user").hover();
    await page.getByRole("button", { name: "Edit" }).click();
    await page.getByRole("textbox", { name: "Edit message" }).fill("Write code: a rust function");
    await page.getByRole("button", { name: "Save & resend" }).click();
    const reply = page.locator('[data-testid="reply"]');
    await page.locator('[data-testid="reply"][data-status="done"]').waitFor({ timeout: 20_000 });
    assert.equal(await reply.count(), 1, "the old reply was replaced");
    assert.equal(await page.locator(".bubble").innerText(), "Write code: a rust function");
    assert.equal(await reply.locator(".codeblock-lang").innerText(), "rust");
    assert.ok((await reply.locator(".hljs-keyword").count()) > 0, "code is highlighted");
    await reply.locator("button.copy-code").waitFor();

    await reply.hover();
    await page.locator('[data-testid="regenerate"]').click();
    await page.locator('[data-testid="stop"]').waitFor({ state: "detached", timeout: 20_000 });
    assert.equal(await page.locator('[data-testid="reply"]').count(), 1);
    assert.equal(await page.locator('[data-testid="reply"]').getAttribute("data-status"), "done");
  });

  test("a model too large for this machine warns before sending and can be used anyway", async () => {
    const page = await start("#/models", { viewport: WINDOW });
    const row = page.locator('tr[data-variant="llama-3.3-70b@4bit-g64"]');
    assert.equal(await row.locator("[data-verdict]").getAttribute("data-verdict"), "wont_fit");
    await row.getByRole("button", { name: "Download" }).click();
    // As `minibar pull`: nothing is downloaded until the user confirms.
    const confirm = row.locator('[data-testid="download-confirm"]');
    await confirm.waitFor();
    assert.match(await confirm.innerText(), /will not fit in memory/);
    await confirm.getByRole("button", { name: "Download anyway" }).click();
    await row.getByText("Installed").waitFor({ timeout: 30_000 });
    await page.locator("[data-view=chat]").click();
    await page.keyboard.press("Control+K");
    await page.locator('[role="option"][data-variant="llama-3.3-70b@4bit-g64"]').click();
    const warning = page.locator('[data-testid="too-large"]');
    await warning.waitFor();
    assert.match(await warning.innerText(), /Model too large/);
    await page.getByRole("textbox", { name: "Message" }).fill("hello");
    assert.equal(await page.locator('[data-testid="send"]').isDisabled(), true, "sending waits for the user's choice");
    await warning.getByRole("button", { name: "Use anyway" }).click();
    await warning.waitFor({ state: "detached" });
    assert.equal(await page.locator('[data-testid="send"]').isDisabled(), false);
    // The choice is the model's, saved in the settings the backend reads before loading.
    const saved = await page.evaluate(() => Object.values(localStorage).join("\n"));
    assert.match(saved, /"forcedModels":\["llama-3.3-70b@4bit-g64"\]/);
  });

  test("an engine error shows in the reply with a retry", async () => {
    const page = await start("#/chat");
    await newChat(page);
    const box = page.getByRole("textbox", { name: "Message" });
    await box.fill("/error now");
    await box.press("Enter");
    const alert = page.locator(".error-box");
    await alert.waitFor();
    assert.match(await alert.innerText(), /Engine error/);
    await alert.getByRole("button", { name: "Retry" }).waitFor();
  });
});

describe("chat in the window", () => {
  test("a reply keeps streaming while another view is shown", async () => {
    const page = await start("#/chat", { viewport: WINDOW });
    await newChat(page);
    await slowTokens(page, 60);
    const box = page.getByRole("textbox", { name: "Message" });
    await box.fill("Explain memory bandwidth");
    await box.press("Enter");
    await page.locator('[data-testid="reply"] .markdown').waitFor();
    await page.locator("[data-view=settings]").click();
    await page.locator('[data-testid="temperature"]').waitFor();
    await page.locator("[data-view=chat]").click();
    const reply = page.locator('[data-testid="reply"]').last();
    await reply.locator('[data-testid="stats"]').waitFor({ timeout: 30_000 });
    assert.equal(await reply.getAttribute("data-status"), "done");
    assert.match(await reply.innerText(), /prints both figures at the end/);
  });

  test("chats can be searched, exported as Markdown and deleted", async () => {
    const page = await start("#/chat", { viewport: WINDOW });
    const sessions = page.locator('[data-testid="session"]');
    await sessions.first().waitFor();
    assert.equal(await sessions.count(), 2);
    await page.getByRole("searchbox", { name: "Search chats" }).fill("sum_even");
    const hit = page.locator(".session", { hasText: "Sum of even numbers" });
    await hit.waitFor();
    assert.equal(await page.locator(".list .session").count(), 1);
    await hit.click();
    await page.locator(".codeblock").waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export" }).click()]);
    assert.equal(download.suggestedFilename(), "sum-of-even-numbers-in-rust.md");
    const path = await download.path();
    const { readFile } = await import("node:fs/promises");
    const markdown = await readFile(path, "utf8");
    assert.match(markdown, /^# Sum of even numbers in Rust/);
    assert.match(markdown, /```rust/);
    await page.getByRole("searchbox", { name: "Search chats" }).fill("");
    await page.getByRole("searchbox", { name: "Search chats" }).dispatchEvent("input");
    await sessions.nth(1).waitFor();
    await page.getByRole("button", { name: "Delete chat Sum of even numbers in Rust" }).click();
    await page.locator('[data-testid="session"]', { hasText: "Sum of even numbers" }).waitFor({ state: "detached" });
    assert.equal(await sessions.count(), 1);
  });
});

describe("models in the window", () => {
  test("a download shows bytes, speed and ETA, pauses, resumes and installs", async () => {
    const page = await start("#/models", { viewport: WINDOW });
    const row = page.locator('tr[data-variant="qwen3-4b@4bit-g64"]');
    await row.getByRole("button", { name: "Download" }).click();
    const progress = row.locator('[data-testid="download-progress"]');
    await progress.waitFor();
    await row.locator('[data-testid="download-speed"]', { hasText: /\d.*B\/s/ }).waitFor();
    assert.match(await progress.innerText(), /of 2\.3 GB/);
    assert.match(await progress.innerText(), /left/);
    await row.getByRole("button", { name: "Pause" }).click();
    await progress.getByText("Paused").waitFor();
    await row.getByRole("button", { name: "Resume" }).click();
    await row.locator('[data-testid="download-speed"]').waitFor();
    await row.getByText("Installed").waitFor({ timeout: 30_000 });
    assert.match(await page.locator('[data-testid="disk-usage"]').innerText(), /2\.7 GB in models/);
  });

  test("a failed download says why and can be retried or cancelled", async () => {
    const page = await start("#/models", { viewport: WINDOW });
    const row = page.locator('tr[data-variant="gemma-3-12b@4bit"]');
    await row.getByRole("button", { name: "Download" }).click();
    const failed = row.locator('[data-testid="download-failed"]');
    await failed.waitFor({ timeout: 30_000 });
    assert.match(await failed.innerText(), /Checksum mismatch/);
    await failed.getByRole("button", { name: "Retry" }).click();
    await row.locator('[data-testid="download-progress"]').waitFor();
    await row.getByRole("button", { name: "Cancel" }).click();
    await row.getByRole("button", { name: "Download" }).waitFor();
  });

  test("filters: fits only, family and size", async () => {
    const page = await start("#/models", { viewport: WINDOW });
    await page.locator('[data-testid="model-card"]').first().waitFor();
    assert.ok((await page.locator('[data-verdict="wont_fit"]').count()) > 0);
    await page.locator('[data-testid="fits-only"]').check();
    assert.equal(await page.locator('[data-verdict="wont_fit"]').count(), 0);
    assert.equal(await page.locator('[data-model="llama-3.3-70b"]').count(), 0, "a 70B model does not fit 24 GB");
    await page.locator('[data-testid="fits-only"]').uncheck();
    await page.getByRole("combobox", { name: "Family" }).selectOption("Llama");
    assert.deepEqual(await page.locator('[data-testid="model-card"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-model"))), ["llama-3.1-8b", "llama-3.3-70b"]);
    await page.getByRole("combobox", { name: "Size" }).selectOption("large");
    assert.deepEqual(await page.locator('[data-testid="model-card"]').evaluateAll((els) => els.map((e) => e.getAttribute("data-model"))), ["llama-3.3-70b"]);
  });

  test("which Mac runs what, a model the engine does not run, and a hub search", async () => {
    const page = await start("#/models", { viewport: WINDOW });
    // A catalog model the backend says the engine does not run: labelled, no Download button.
    const moe = page.locator('[data-testid="model-card"][data-model="qwen3-30b-a3b"]');
    await moe.locator('[data-testid="not-supported"]').waitFor();
    assert.equal(await moe.getByRole("button", { name: "Download" }).count(), 0);
    // The what-if table shows the backend's cells as they are.
    await page.locator('[data-testid="what-if-toggle"]').check();
    const cell = (/** @type {string} */ variant, /** @type {number} */ gb) => page.locator(`[data-testid="what-if"] tr[data-variant="${variant}"] td[data-gb="${gb}"]`);
    await cell("llama-3.3-70b@4bit-g64", 64).waitFor();
    assert.equal(await cell("llama-3.3-70b@4bit-g64", 64).getAttribute("data-verdict"), "fits");
    assert.match(await cell("llama-3.3-70b@4bit-g64", 64).innerText(), /^fits \d+K$/);
    assert.equal(await cell("llama-3.3-70b@8bit-g64", 64).innerText(), "no");
    // Hub search: results with their fit badge; an unsupported one is labelled, not offered.
    await page.locator('[data-testid="hub-query"]').fill("qwen3");
    await page.locator('[data-testid="hub-search"]').click();
    const results = page.locator('[data-testid="hub-results"]');
    const hit = results.locator('tr[data-repo="mlx-community/qwen3-0.6b-8bit-g64"]');
    await hit.locator("[data-verdict]").waitFor();
    await results.locator('tr[data-repo="mlx-community/qwen3-30b-a3b-4bit-g64"] [data-testid="not-supported"]').waitFor();
    await hit.locator('[data-testid="hub-download"]').click();
    await hit.locator('[data-testid="hub-download-progress"], .installed').first().waitFor();
  });

  test("the memory gauge follows the backend's memory events", async () => {
    const page = await start("#/models", { viewport: WINDOW });
    const used = page.locator('[data-testid="memory-used"]');
    const first = await used.innerText();
    await page.waitForFunction((before) => document.querySelector('[data-testid="memory-used"]')?.textContent !== before, first);
  });

  test("quantize makes a new installed variant", async () => {
    const page = await start("#/models", { viewport: WINDOW });
    const row = page.locator('tr[data-variant="smollm2-135m@q4_1"]');
    await row.getByRole("button", { name: "Quantize…" }).click();
    const sheet = page.getByRole("dialog", { name: "Quantize" });
    await sheet.getByRole("combobox").first().selectOption("6");
    await sheet.getByRole("button", { name: "Quantize" }).click();
    const made = page.locator('tr[data-variant="smollm2-135m@6bit"]');
    await page.locator('[data-testid="quantize-progress"][data-variant="smollm2-135m@6bit"]').waitFor();
    await made.getByText("Installed").waitFor({ timeout: 20_000 });
    await page.locator('[data-testid="quantize-progress"]').waitFor({ state: "detached" });
  });

  test("a quantization can be cancelled and leaves no variant", async () => {
    const page = await start("#/models", { viewport: WINDOW });
    await page.evaluate(() => {
      /** @type {any} */ (window).__MINIBAR_MOCK__.quantizeIntervalMs = 1000;
    });
    const row = page.locator('tr[data-variant="smollm2-135m@q4_1"]');
    await row.getByRole("button", { name: "Quantize…" }).click();
    const sheet = page.getByRole("dialog", { name: "Quantize" });
    await sheet.locator('[data-testid="requantize-note"]').waitFor();
    await sheet.getByRole("combobox").nth(1).selectOption("32");
    await sheet.getByRole("button", { name: "Quantize" }).click();
    const job = page.locator('[data-testid="quantize-progress"][data-variant="smollm2-135m@4bit-g32"]');
    await job.waitFor();
    await job.getByRole("button", { name: "Cancel" }).click();
    await job.waitFor({ state: "detached" });
    assert.equal(await page.locator('tr[data-variant="smollm2-135m@4bit-g32"]').count(), 0);
  });

  test("with every model deleted the chat says no model is installed", async () => {
    const page = await start("#/models", { viewport: WINDOW });
    for (const id of ["smollm2-135m@q4_1", "qwen3-0.6b@4bit-g64"]) {
      const row = page.locator(`tr[data-variant="${id}"]`);
      await row.getByRole("button", { name: "Delete" }).click();
      await row.getByRole("button", { name: "Download" }).waitFor();
    }
    await page.locator("[data-view=chat]").click();
    await page.locator('[data-testid="no-model"]').waitFor(); // the open chat stays readable
    await page.getByRole("button", { name: "New chat" }).first().click();
    await page.getByText("No model installed").waitFor();
    assert.equal(await page.getByRole("textbox", { name: "Message" }).isDisabled(), true);
    await shot(page, "chat-no-model-light");
  });
});

describe("benchmark", () => {
  test("one button runs it with live progress, then draws the charts and adds to history", async () => {
    const page = await start("#/bench", { viewport: WINDOW });
    await page.locator('[data-testid="chart-speed"] canvas').waitFor();
    const runsBefore = await page.locator('[data-testid="bench-run"]').count();
    await page.locator('[data-testid="bench-start"]').click();
    const progress = page.locator('[data-testid="bench-progress"]');
    await progress.waitFor();
    await progress.getByText(/Memory bandwidth|pp512|tg128|Batch/).waitFor();
    await progress.getByText(/last \S+: [\d.]+ tok\/s/).waitFor();
    // Progress survives a visit to another view.
    await page.locator("[data-view=models]").click();
    await page.locator('[data-testid="model-card"]').first().waitFor();
    await page.locator("[data-view=bench]").click();
    await progress.waitFor();
    await progress.waitFor({ state: "detached", timeout: 60_000 });
    for (const id of ["speed", "roofline", "batch", "ratio", "history", "reference"]) {
      await page.locator(`[data-testid="chart-${id}"] canvas`).waitFor();
    }
    assert.equal(await page.locator('[data-testid="bench-run"]').count(), runsBefore + 1);
    // Quick mode scales the batch up to 16.
    assert.match(await page.locator('[data-testid="chart-ratio"] figcaption').innerText(), /16× the work in [\d.]+× the time/);
    // The newest run is the one shown, selected in the history.
    assert.equal(await page.locator('[data-testid="bench-history"] tr.selected').count(), 1);
  });

  test("a run exports in llama-bench's shapes, and an older run can be opened", async () => {
    const page = await start("#/bench", { viewport: WINDOW });
    await page.locator('[data-testid="chart-speed"] canvas').waitFor();
    await page.locator('[data-testid="export-csv"]').click();
    const text = page.locator('[data-testid="bench-export"]');
    await text.waitFor();
    assert.match(await text.innerText(), /avg_ts/);
    await page.getByRole("dialog", { name: "Export" }).getByRole("button", { name: "Done" }).click();
    await text.waitFor({ state: "detached" });
    // Compared with the oldest run, every figure gets its ratio.
    const compare = page.locator('[data-testid="compare-with"]');
    const choices = await compare.locator("option").evaluateAll((os) => os.map((o) => /** @type {HTMLOptionElement} */ (o).value));
    await compare.selectOption(choices[choices.length - 1]);
    await page.locator('[data-testid="ratio-tg128"]').first().waitFor();
    assert.match(await page.locator('[data-testid="ratio-pp512"]').first().innerText(), /×\d+\.\d\d/);
    const oldest = page.locator('[data-testid="bench-run"]').last();
    await oldest.getByRole("button").click();
    await page.waitForFunction(() => document.querySelector('[data-testid="bench-history"] tr.selected') === [...document.querySelectorAll('[data-testid="bench-run"]')].at(-1));
  });

  test("cancel stops a run", async () => {
    const page = await start("#/bench", { viewport: WINDOW });
    await page.locator('[data-testid="bench-start"]').click();
    await page.locator('[data-testid="bench-progress"]').waitFor();
    await page.locator('[data-testid="bench-cancel"]').click();
    await page.getByText("Benchmark cancelled.").waitFor();
    await page.locator('[data-testid="bench-start"]').waitFor();
  });
});

describe("settings", () => {
  test("a changed setting is validated, saved and still there after a reload", async () => {
    const page = await start("#/settings", { viewport: WINDOW });
    const temperature = page.locator('[data-testid="temperature"]');
    await temperature.fill("5");
    await page.getByText("Between 0 and 2").waitFor();
    assert.equal(await page.locator('[data-testid="save-settings"]').isDisabled(), true);
    await temperature.fill("0.3");
    await page.locator('[data-testid="hf-endpoint"]').fill("https://hf-mirror.example");
    await page.locator('[data-testid="save-settings"]').click();
    await page.locator('[data-testid="settings-saved"]').waitFor();
    await page.reload();
    await page.locator('[data-testid="temperature"]').waitFor();
    assert.equal(await page.locator('[data-testid="temperature"]').inputValue(), "0.3");
    assert.equal(await page.locator('[data-testid="hf-endpoint"]').inputValue(), "https://hf-mirror.example");
  });

  test("the hub token goes to the backend, not into the saved settings", async () => {
    const page = await start("#/settings", { viewport: WINDOW });
    await page.locator('[data-testid="hub-token"]').fill("hf_secret_123");
    await page.locator('[data-testid="store-token"]').click();
    await page.locator('[data-testid="settings-saved"]', { hasText: "keychain" }).waitFor();
    assert.equal(await page.locator('[data-testid="hub-token"]').inputValue(), "");
    await page.locator('[data-testid="save-settings"]').click();
    await page.locator('[data-testid="settings-saved"]', { hasText: "Settings saved" }).waitFor();
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }));
    assert.doesNotMatch(stored, /hf_secret_123/);
  });
});

describe("local server", () => {
  test("the switch asks the backend and shows why it could not start", async () => {
    const page = await start("#/settings", { viewport: WINDOW });
    const toggle = page.locator('[data-testid="local-server"]');
    assert.equal(await page.locator('[data-testid="local-server-port"]').inputValue(), "11434");
    // The browser mock has no server: it refuses, and the UI says so and stays off.
    await toggle.click();
    await page.locator('[data-testid="local-server-error"]', { hasText: "needs the Minibar app" }).waitFor();
    assert.equal(await toggle.isChecked(), false);
    assert.equal(await page.locator('[data-testid="local-server-url"]').count(), 0);
    // A port out of range cannot be used.
    await page.locator('[data-testid="local-server-port"]').fill("70000");
    await page.getByText("Between 1 and 65535").waitFor();
    assert.equal(await toggle.isDisabled(), true);
  });
});

describe("screenshots", () => {
  for (const colorScheme of /** @type {const} */ (["light", "dark"])) {
    test(`every view in ${colorScheme}`, async () => {
      let page = await start("#/chat", { colorScheme });
      await page.locator('[data-testid="stats"]').first().waitFor();
      await shot(page, `chat-popover-${colorScheme}`);
      await page.keyboard.press("Control+K");
      await page.getByRole("dialog", { name: "Switch model" }).waitFor();
      await shot(page, `chat-model-switcher-${colorScheme}`);
      await page.keyboard.press("Escape");
      // In the popover, Models asks the shell for the large window; the mock shows it in place.
      await page.locator("[data-view=models]").click();
      await page.locator('[data-testid="model-card"]').first().waitFor();
      await shot(page, `models-popover-${colorScheme}`);
      await session?.context.close();
      session = null;

      page = await start("#/chat", { colorScheme, viewport: WINDOW });
      await page.locator('[data-testid="session"]', { hasText: "Rust" }).click();
      await page.locator(".codeblock").waitFor();
      await shot(page, `chat-window-${colorScheme}`);
      await page.locator("[data-view=models]").click();
      await page.locator('[data-testid="model-card"]').first().waitFor();
      await shot(page, `models-${colorScheme}`);
      await page.locator("[data-view=bench]").click();
      await page.locator('[data-testid="chart-reference"] canvas').waitFor();
      await shot(page, `bench-${colorScheme}`);
      await page.locator("[data-view=settings]").click();
      await page.locator('[data-testid="temperature"]').waitFor();
      await shot(page, `settings-${colorScheme}`);
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, colorScheme === "dark" ? "rgb(30, 30, 30)" : "rgb(245, 245, 247)", "follows prefers-color-scheme");
    });
  }
});

void POPOVER;
