import { describe, expect, test } from "vitest";
import { actionFor, detectMac, shortcutLabel, type KeyContext, type KeyPress } from "../../src/lib/keys";

const key = (k: string, mods: Partial<KeyPress> = {}): KeyPress => ({ key: k, metaKey: false, ctrlKey: false, shiftKey: false, altKey: false, isComposing: false, ...mods });
const mac: KeyContext = { isMac: true, streaming: false, overlayOpen: false, inComposer: false };
const linux: KeyContext = { ...mac, isMac: false };

describe("actionFor", () => {
  test("⌘N and ⌘K on macOS, Ctrl on other systems", () => {
    expect(actionFor(key("n", { metaKey: true }), mac)).toBe("new-chat");
    expect(actionFor(key("K", { metaKey: true }), mac)).toBe("model-switcher");
    expect(actionFor(key("n", { ctrlKey: true }), mac)).toBeNull();
    expect(actionFor(key("n", { ctrlKey: true }), linux)).toBe("new-chat");
    expect(actionFor(key("k", { ctrlKey: true }), linux)).toBe("model-switcher");
    expect(actionFor(key("n", { metaKey: true, shiftKey: true }), mac)).toBeNull();
  });
  test("Enter sends from the composer, Shift-Enter is a new line", () => {
    const c = { ...mac, inComposer: true };
    expect(actionFor(key("Enter"), c)).toBe("send");
    expect(actionFor(key("Enter", { shiftKey: true }), c)).toBeNull();
    expect(actionFor(key("Enter"), mac)).toBeNull();
  });
  test("Enter that confirms an input-method composition does not send", () => {
    expect(actionFor(key("Enter", { isComposing: true }), { ...mac, inComposer: true })).toBeNull();
  });
  test("Esc closes a popup first, then stops, then hides the window", () => {
    expect(actionFor(key("Escape"), { ...mac, overlayOpen: true, streaming: true })).toBe("close-overlay");
    expect(actionFor(key("Escape"), { ...mac, streaming: true })).toBe("stop");
    expect(actionFor(key("Escape"), mac)).toBe("hide-window");
  });
  test("other keys do nothing", () => {
    expect(actionFor(key("a"), mac)).toBeNull();
  });
});

test("platform detection and labels", () => {
  expect(detectMac("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)")).toBe(true);
  expect(detectMac("Mozilla/5.0 (X11; Linux x86_64)")).toBe(false);
  expect(shortcutLabel("k", true)).toBe("⌘K");
  expect(shortcutLabel("n", false)).toBe("Ctrl+N");
});
