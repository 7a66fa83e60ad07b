#!/usr/bin/env bash
# `make run`: starts the menu-bar app where there is a display; elsewhere says so and opens the
# same chat in the terminal. Builds what it starts, in release, once: the app and `minibar` in
# one cargo invocation (one feature resolution), or `minibar` alone for the terminal.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
MINIBAR_BIN="$CARGO_TARGET_DIR/release/minibar"

has_display() {
  [ "$OS" = Darwin ] && return 0
  [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]
}

terminal_chat() {
  cargo build --release -q -p minibar
  "$ROOT/scripts/install-default-model.sh" "$MINIBAR_BIN" >/dev/null
  exec "$MINIBAR_BIN" chat
}

if ! has_display; then
  echo "No display here (no DISPLAY or WAYLAND_DISPLAY: a server, CI or an SSH session)."
  echo "Opening the same chat in the terminal instead: minibar chat"
  terminal_chat
fi
if [ ! -f "$ROOT/src-tauri/tauri.conf.json" ]; then
  echo "The desktop app is not part of this checkout yet; opening the terminal chat instead."
  terminal_chat
fi
"$ROOT/scripts/install-ui-deps.sh"
(cd "$ROOT/ui" && npm run -s build >/dev/null)
cargo build --release -q -p minibar -p minibar-app --features minibar-app/custom-protocol
"$ROOT/scripts/install-default-model.sh" "$MINIBAR_BIN" >/dev/null
exec "$CARGO_TARGET_DIR/release/minibar-app"
