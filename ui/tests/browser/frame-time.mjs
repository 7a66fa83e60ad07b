// A measurement, not a test: frame intervals of the chat while a long reply streams from the
// mock backend (a token every 10 ms), in headless Chromium. Prints p50, p95, p99 and the longest
// frame, with the same figures for an idle page as the baseline.
// Run: npm run build && node tests/browser/frame-time.mjs
import { launch, open, serve, WINDOW } from "./harness.mjs";

const server = await serve();
const browser = await launch();
try {
  const { page, context } = await open(browser, server.url, "#/chat", { viewport: WINDOW });
  await page.getByRole("button", { name: "New chat" }).first().click();

  /** Records frame intervals for `ms` milliseconds, in the page. @param {number} ms */
  const record = (ms) =>
    page.evaluate(
      (duration) =>
        new Promise((resolve) => {
          /** @type {number[]} */
          const gaps = [];
          let last = performance.now();
          const end = last + duration;
          const tick = (/** @type {number} */ t) => {
            gaps.push(t - last);
            last = t;
            if (t < end) requestAnimationFrame(tick);
            else resolve(gaps);
          };
          requestAnimationFrame(tick);
        }),
      ms,
    );
  /** @param {number[]} xs */
  const summary = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (/** @type {number} */ p) => s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(1);
    return `frames ${s.length}, p50 ${q(0.5)} ms, p95 ${q(0.95)} ms, p99 ${q(0.99)} ms, max ${s[s.length - 1].toFixed(1)} ms`;
  };

  const idle = /** @type {number[]} */ (await record(3000));
  await page.evaluate(() => {
    /** @type {any} */ (window).__MINIBAR_MOCK__.tokenIntervalMs = 10;
  });
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("/long reply please");
  await box.press("Enter");
  await page.locator('[data-testid="stop"]').waitFor();
  const streaming = /** @type {number[]} */ (await record(8000));
  const chars = await page.locator('[data-testid="reply"]').last().innerText();
  console.log(`idle:      ${summary(idle)}`);
  console.log(`streaming: ${summary(streaming)} (${chars.length} characters rendered)`);
  await context.close();
} finally {
  await browser.close();
  await server.close();
}
