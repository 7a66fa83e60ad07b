/**
 * Markdown for replies: marked to parse, highlight.js for code, DOMPurify on the result. Model
 * output is untrusted: raw HTML in it is shown as text, images become links (a strict CSP would
 * block them anyway), and the sanitizer strips anything that could run.
 */
import { Marked, type Tokens } from "marked";
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import shell from "highlight.js/lib/languages/shell";
import sql from "highlight.js/lib/languages/sql";
import swift from "highlight.js/lib/languages/swift";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

// A curated set keeps the bundle small; unknown languages are shown plain (escaped).
const LANGUAGES = { bash, c, cpp, css, go, java, javascript, json, markdown, python, rust, shell, sql, swift, typescript, xml, yaml };
for (const [name, lang] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, lang);

/** Escapes text for HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

/** Highlighted HTML of code in a language, escaped plain text when the language is unknown. */
export function highlight(code: string, lang: string | undefined): { html: string; language: string | null } {
  const name = (lang ?? "").trim().split(/\s+/)[0].toLowerCase();
  if (name && hljs.getLanguage(name)) {
    return { html: hljs.highlight(code, { language: name, ignoreIllegals: true }).value, language: name };
  }
  return { html: escapeHtml(code), language: name || null };
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    code({ text, lang }: Tokens.Code) {
      const { html, language } = highlight(text, lang);
      const label = language ? escapeHtml(language) : "text";
      // The copy button is wired by event delegation in Markdown.svelte (no inline handlers under CSP).
      return (
        `<div class="codeblock"><div class="codeblock-head"><span class="codeblock-lang">${label}</span>` +
        `<button type="button" class="copy-code" aria-label="Copy code">Copy</button></div>` +
        `<pre><code class="hljs${language ? ` language-${label}` : ""}">${html}</code></pre></div>`
      );
    },
    html({ text }: Tokens.HTML | Tokens.Tag) {
      return escapeHtml(text);
    },
    image({ href, text }: Tokens.Image) {
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});

/**
 * Closes what a half-streamed reply leaves open, so the partial text renders as it will end up:
 * an unterminated code fence becomes a code block rather than a paragraph of backticks.
 */
export function closeOpenFences(text: string): string {
  const fences = text.match(/^ {0,3}(```|~~~)/gm) ?? [];
  if (fences.length % 2 === 1) {
    const fence = fences[fences.length - 1].trim();
    return `${text}${text.endsWith("\n") ? "" : "\n"}${fence}`;
  }
  return text;
}

const ALLOWED_URL = /^(?:https?:|mailto:|#)/i;

/** Sanitized HTML of a reply; `streaming` closes open fences first. */
export function renderMarkdown(text: string, streaming = false): string {
  const source = streaming ? closeOpenFences(text) : text;
  const raw = marked.parse(source, { async: false }) as string;
  return DOMPurify.sanitize(raw, {
    FORBID_TAGS: ["style", "img", "video", "audio", "iframe", "form", "input", "textarea", "select", "svg", "math"],
    FORBID_ATTR: ["style"],
    ALLOWED_URI_REGEXP: ALLOWED_URL,
  });
}
