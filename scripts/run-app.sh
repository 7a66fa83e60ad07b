#!/usr/bin/env bash
# Starts the menu-bar app where there is a display; elsewhere says so and opens the same chat
# in the terminal.
source "$(dirname "$0")/common.sh"
MINIBAR_BIN="${1:?usage: run-app.sh path/to/minibar}"

has_display() {
  [ "$OS" = Darwin ] && return 0
  [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]
}

if ! has_display; then
  echo "No display here (no DISPLAY or WAYLAND_DISPLAY: a server, CI or an SSH session)."
  echo "Opening the same chat in the terminal instead: minibar chat"
  exec "$MINIBAR_BIN" chat
fi
if [ ! -f "$ROOT/src-tauri/tauri.conf.json" ]; then
  echo "The desktop app is not part of this checkout yet; opening the terminal chat instead."
  exec "$MINIBAR_BIN" chat
fi
(cd "$ROOT/ui" && npm run -s build >/dev/null)
cargo build --release -q -p minibar-app --features custom-protocol
exec "$CARGO_TARGET_DIR/release/minibar-app"
