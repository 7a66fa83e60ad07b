#!/usr/bin/env bash
# Every test: Rust (unit, integration, reference comparisons against mlx-lm), UI (Vitest and
# browser tests in Chromium), and end-to-end tests of the app under Xvfb.
source "$(dirname "$0")/common.sh"
cd "$ROOT"

# The embedded default model's GGUF, and the reference implementation's Python.
export MINIBAR_DEFAULT_GGUF="$("$ROOT/scripts/install-default-model.sh" "$CARGO_TARGET_DIR/debug/minibar")"
export MINIBAR_REFERENCE_PYTHON="$VENV/bin/python"
# Missing references fail the run instead of skipping (local `cargo test` may skip them).
export MINIBAR_REQUIRE_REFERENCE=1
# Models converted for tests are cached between runs.
export MINIBAR_TEST_FIXTURES="$MINIBAR_CACHE/fixtures"
export MINIBAR_BIN="$CARGO_TARGET_DIR/debug/minibar"

failed=()
run() {
  local name="$1"
  shift
  step "$name"
  if ! "$@"; then failed+=("$name"); fi
}

run "format" cargo fmt --all -- --check
run "rust tests" cargo test --workspace --exclude minibar-app --no-fail-fast -q
run "ui dependencies" "$ROOT/scripts/install-ui-deps.sh"
run "ui type-check" bash -c "cd ui && npm run -s check"
run "ui tests" bash -c "cd ui && npm test -s"
# The app embeds ui/dist, which the UI tests just built.
if [ -f src-tauri/tauri.conf.json ]; then
  run "app tests" cargo test -p minibar-app --features custom-protocol -q
fi
if [ -x src-tauri/tests/e2e/run.sh ]; then
  run "app end-to-end tests" src-tauri/tests/e2e/run.sh
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all test suites passed"
