/** Routing by URL hash (`#/models`), or by a `view` query parameter the shell may set. */
import type { View } from "./bindings";

/** The views, in the order of the toolbar. */
export const VIEWS: { id: View; label: string }[] = [
  { id: "chat", label: "Chat" },
  { id: "models", label: "Models" },
  { id: "bench", label: "Benchmark" },
  { id: "settings", label: "Settings" },
];

/** The view a URL asks for; chat when none or an unknown one. */
export function viewFromUrl(hash: string, search: string = ""): View {
  const fromHash = hash.replace(/^#\/?/, "").split(/[/?]/)[0];
  const fromQuery = new URLSearchParams(search).get("view") ?? "";
  for (const candidate of [fromHash, fromQuery]) {
    const v = VIEWS.find((x) => x.id === candidate);
    if (v) return v.id;
  }
  return "chat";
}

/** The hash for a view. */
export function hashFor(view: View): string {
  return `#/${view}`;
}
