// @vitest-environment jsdom
import { describe, expect, test } from "vitest";
import { closeOpenFences, escapeHtml, highlight, renderMarkdown } from "../../src/lib/markdown";

function dom(html: string): HTMLElement {
  const d = document.createElement("div");
  d.innerHTML = html;
  return d;
}

describe("renderMarkdown", () => {
  test("renders emphasis, lists and tables", () => {
    const d = dom(renderMarkdown("**bold** and *it*\n\n1. one\n2. two\n\n| a | b |\n|---|---|\n| 1 | 2 |"));
    expect(d.querySelector("strong")?.textContent).toBe("bold");
    expect(d.querySelectorAll("ol li")).toHaveLength(2);
    expect(d.querySelector("table td")?.textContent).toBe("1");
  });
  test("highlights code in a known language with a copy button", () => {
    const d = dom(renderMarkdown("```rust\nfn main() {}\n```"));
    const code = d.querySelector(".codeblock code");
    expect(code?.className).toContain("language-rust");
    expect(code?.querySelector(".hljs-keyword")?.textContent).toBe("fn");
    expect(d.querySelector(".codeblock-lang")?.textContent).toBe("rust");
    expect(d.querySelector("button.copy-code")).not.toBeNull();
    expect(code?.textContent).toBe("fn main() {}");
  });
  test("shows unknown languages as escaped plain text", () => {
    const d = dom(renderMarkdown("```brainfuck\n<script>x</script>\n```"));
    expect(d.querySelector("script")).toBeNull();
    expect(d.querySelector("code")?.textContent).toBe("<script>x</script>");
  });
  test("shows raw HTML from the model as text, never as elements", () => {
    const d = dom(renderMarkdown('hello <img src=x onerror="alert(1)"> <script>alert(1)</script> <b onclick="x()">b</b>'));
    expect(d.querySelector("img, script, b")).toBeNull();
    expect(d.textContent).toContain("<script>alert(1)</script>");
  });
  test("drops javascript: links and turns images into links", () => {
    const d = dom(renderMarkdown("[click](javascript:alert(1)) ![cat](https://example.com/cat.png)"));
    const links = [...d.querySelectorAll("a")];
    expect(links.some((a) => (a.getAttribute("href") ?? "").startsWith("javascript"))).toBe(false);
    expect(d.querySelector("img")).toBeNull();
    expect(links.find((a) => a.textContent === "cat")?.getAttribute("href")).toBe("https://example.com/cat.png");
  });
  test("keeps ordinary web links", () => {
    const d = dom(renderMarkdown("see [docs](https://tauri.app)"));
    expect(d.querySelector("a")?.getAttribute("href")).toBe("https://tauri.app");
  });
});

describe("streaming", () => {
  test("an unterminated fence is closed so partial code renders as code", () => {
    expect(closeOpenFences("text\n```py\nprint(1)")).toBe("text\n```py\nprint(1)\n```");
    expect(closeOpenFences("```a\nx\n```\n")).toBe("```a\nx\n```\n");
    const d = dom(renderMarkdown("Here:\n```python\nprint('hi')", true));
    expect(d.querySelector(".codeblock code")?.textContent).toBe("print('hi')");
  });
  test("without streaming the text is rendered as given", () => {
    const d = dom(renderMarkdown("```python\nprint('hi')", false));
    expect(d.querySelector(".codeblock")).not.toBeNull();
  });
});

test("escapeHtml and highlight", () => {
  expect(escapeHtml(`<a href="x">&'`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  expect(highlight("x", "nope").language).toBe("nope");
  expect(highlight("x", undefined).language).toBeNull();
  expect(highlight("let x = 1;", "typescript").html).toContain("hljs-keyword");
});
