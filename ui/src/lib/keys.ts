/** Keyboard shortcuts, as a pure mapping from a key press and the UI's state to an action. */

/** What a key press asks for. */
export type Action = "new-chat" | "model-switcher" | "send" | "stop" | "close-overlay" | "hide-window";

/** The parts of a KeyboardEvent the mapping reads. */
export type KeyPress = {
  key: string;
  metaKey: boolean;
  ctrlKey: boolean;
  shiftKey: boolean;
  altKey: boolean;
  /** True while an input method composes text (Enter then confirms the composition). */
  isComposing: boolean;
};

/** The UI state a shortcut depends on. */
export type KeyContext = {
  /** ⌘ on macOS, Ctrl elsewhere. */
  isMac: boolean;
  /** A reply is streaming. */
  streaming: boolean;
  /** A popup (model switcher, dialog) is open. */
  overlayOpen: boolean;
  /** The key was pressed in the message composer. */
  inComposer: boolean;
};

/** Whether the platform's command modifier (alone) is held. */
function commandKey(k: KeyPress, isMac: boolean): boolean {
  return isMac ? k.metaKey && !k.ctrlKey : k.ctrlKey && !k.metaKey;
}

/** The action for a key press, or null to let the browser handle it (Shift-Enter: new line). */
export function actionFor(k: KeyPress, ctx: KeyContext): Action | null {
  if (k.isComposing) return null;
  const key = k.key.length === 1 ? k.key.toLowerCase() : k.key;
  if (commandKey(k, ctx.isMac) && !k.altKey && !k.shiftKey) {
    if (key === "n") return "new-chat";
    if (key === "k") return "model-switcher";
  }
  if (key === "Escape") {
    if (ctx.overlayOpen) return "close-overlay";
    if (ctx.streaming) return "stop";
    return "hide-window";
  }
  if (key === "Enter" && ctx.inComposer && !k.shiftKey && !k.altKey && !k.metaKey && !k.ctrlKey) {
    return "send";
  }
  return null;
}

/** Whether this runs on macOS (for ⌘ versus Ctrl and the labels). */
export function detectMac(platform: string = typeof navigator !== "undefined" ? navigator.userAgent : ""): boolean {
  return /Mac|iPhone|iPad/.test(platform);
}

/** The label of a shortcut on this platform: "⌘N" or "Ctrl+N". */
export function shortcutLabel(letter: string, isMac: boolean): string {
  return isMac ? `⌘${letter.toUpperCase()}` : `Ctrl+${letter.toUpperCase()}`;
}
