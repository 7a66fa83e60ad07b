import { describe, expect, test } from "vitest";
import type { ChatEvent, GenerationStats } from "../../src/lib/bindings";
import { applyChatEvent, isActive, newStream } from "../../src/lib/stream";

const ids = { requestId: "r1", sessionId: "s1", messageId: "m1" };
const tok = (index: number, text: string, requestId = "r1"): ChatEvent => ({ kind: "token", ...ids, requestId, index, text });
const stats = (stopReason: GenerationStats["stopReason"]): GenerationStats => ({
  promptTokens: 10,
  generatedTokens: 3,
  ttftMs: 120,
  tokensPerSecond: 50,
  totalMs: 160,
  stopReason,
});

const run = (events: ChatEvent[]) => events.reduce(applyChatEvent, newStream("r1", "m1"));

describe("applyChatEvent", () => {
  test("appends tokens in order and ends with stats", () => {
    const s = run([{ kind: "started", ...ids, model: "x@q4" }, tok(0, "Hel"), tok(1, "lo"), tok(2, "!"), { kind: "done", ...ids, stats: stats("eos") }]);
    expect(s.text).toBe("Hello!");
    expect(s.status).toBe("done");
    expect(s.stats?.tokensPerSecond).toBe(50);
    expect(isActive(s)).toBe(false);
  });
  test("is streaming after the first token and waiting before", () => {
    expect(run([]).status).toBe("waiting");
    expect(run([tok(0, "a")]).status).toBe("streaming");
  });
  test("drops duplicate tokens", () => {
    expect(run([tok(0, "a"), tok(1, "b"), tok(1, "b"), tok(0, "a")]).text).toBe("ab");
  });
  test("reorders tokens that arrive ahead of a gap", () => {
    const s = run([tok(0, "a"), tok(2, "c")]);
    expect(s.text).toBe("a");
    expect(applyChatEvent(s, tok(1, "b")).text).toBe("abc");
  });
  test("ignores events of other requests and events after the end", () => {
    const s = run([tok(0, "a"), tok(1, "X", "r2"), { kind: "done", ...ids, stats: stats("eos") }]);
    expect(s.text).toBe("a");
    expect(applyChatEvent(s, tok(1, "late"))).toBe(s);
  });
  test("a stop ends as stopped and keeps the text so far", () => {
    const s = run([tok(0, "part"), { kind: "done", ...ids, stats: stats("stopped") }]);
    expect(s.status).toBe("stopped");
    expect(s.text).toBe("part");
  });
  test("an error keeps the partial text and the error", () => {
    const s = run([tok(0, "pa"), tok(2, "ial"), { kind: "error", ...ids, error: { kind: "engine", message: "boom" }, stats: null }]);
    expect(s.status).toBe("error");
    expect(s.error?.kind).toBe("engine");
    expect(s.text).toBe("paial");
  });
  test("started updates the message id", () => {
    const s = applyChatEvent(newStream("r1", "tmp"), { kind: "started", ...ids, messageId: "m9", model: "x" });
    expect(s.messageId).toBe("m9");
  });
});
