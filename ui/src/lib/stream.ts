/**
 * Assembles the `chat-event` stream of one generation into the reply being shown. Tauri delivers
 * events in order, but a token can still arrive twice (a listener re-registered during a window
 * reload) or after the end: indices make assembly idempotent.
 */
import type { AppError, ChatEvent, GenerationStats } from "./bindings";

/** The reply as the UI shows it while (and after) it streams. */
export type StreamState = {
  requestId: string;
  messageId: string;
  text: string;
  /** Index of the next token expected. */
  nextIndex: number;
  /** Tokens that arrived ahead of a gap, by index. */
  pending: Map<number, string>;
  status: "waiting" | "streaming" | "done" | "stopped" | "error";
  stats: GenerationStats | null;
  error: AppError | null;
};

/** A stream waiting for its first token. */
export function newStream(requestId: string, messageId: string): StreamState {
  return {
    requestId,
    messageId,
    text: "",
    nextIndex: 0,
    pending: new Map(),
    status: "waiting",
    stats: null,
    error: null,
  };
}

/** Whether the stream is still producing tokens. */
export function isActive(s: StreamState): boolean {
  return s.status === "waiting" || s.status === "streaming";
}

/**
 * Applies one event to the stream and returns the new state; events of other requests and
 * events after the end leave it unchanged (the same object is returned).
 */
export function applyChatEvent(s: StreamState, e: ChatEvent): StreamState {
  if (e.requestId !== s.requestId || !isActive(s)) return s;
  switch (e.kind) {
    case "started":
      return { ...s, messageId: e.messageId };
    case "token": {
      if (e.index < s.nextIndex || s.pending.has(e.index)) return s;
      const pending = new Map(s.pending);
      pending.set(e.index, e.text);
      let text = s.text;
      let next = s.nextIndex;
      while (pending.has(next)) {
        text += pending.get(next);
        pending.delete(next);
        next++;
      }
      return { ...s, text, nextIndex: next, pending, status: "streaming" };
    }
    case "done":
      return {
        ...s,
        text: flushPending(s),
        pending: new Map(),
        stats: e.stats,
        status: e.stats.stopReason === "stopped" ? "stopped" : "done",
      };
    case "error":
      return { ...s, text: flushPending(s), pending: new Map(), stats: e.stats, error: e.error, status: "error" };
    case "saveFailed":
      // The reply streams on; the chat view shows the failure in its banner.
      return s;
  }
}

/** At the end, tokens stuck behind a gap are kept rather than lost. */
function flushPending(s: StreamState): string {
  const rest = [...s.pending.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => t);
  return s.text + rest.join("");
}
