#!/usr/bin/env bash
# Every test: lint, the macOS type-check, Rust (unit, integration, reference comparisons against
# mlx-lm), UI (Vitest and browser tests in Chromium), and end-to-end tests of the app under Xvfb.
# Prints a table of where the time went at the end.
#
# The workspace is compiled once: the UI is built first (the app embeds ui/dist), then one
# `cargo` feature set for everything (the app with custom-protocol), which the lint, the tests
# and the end-to-end run all reuse. Test binaries run in parallel under cargo-nextest when it
# is installed (a reference test that waits on mlx-lm leaves the other core to other tests).
source "$(dirname "$0")/common.sh"
cd "$ROOT"

# The reference implementation's Python.
export MINIBAR_REFERENCE_PYTHON="$ROOT/scripts/reference-python"
# Missing references fail the run instead of skipping (local `cargo test` may skip them).
export MINIBAR_REQUIRE_REFERENCE=1
# Models converted for tests, and reference outputs, are cached between runs.
export MINIBAR_TEST_FIXTURES="$MINIBAR_CACHE/fixtures"
export MINIBAR_BIN="$CARGO_TARGET_DIR/debug/minibar"

FEATURES=(--workspace --features minibar-app/custom-protocol)
failed=()
times=()
run() {
  local name="$1" t0=$SECONDS status=ok
  shift
  step "$name"
  if ! "$@"; then
    failed+=("$name")
    status=FAILED
  fi
  times+=("$(printf '%-24s %6ss  %s' "$name" "$((SECONDS - t0))" "$status")")
}

rust_tests() {
  if command -v cargo-nextest >/dev/null; then
    # .config/nextest.toml: slow tests named, per-test times in target/nextest/default/junit.xml.
    cargo nextest run "${FEATURES[@]}" --no-fail-fast --cargo-quiet --hide-progress-bar
    # nextest does not run doctests.
    cargo test "${FEATURES[@]}" --doc -q
  else
    cargo test "${FEATURES[@]}" --no-fail-fast -q
  fi
}

start=$SECONDS
# The reference Python installs while the workspace compiles: on a new machine it is mostly
# compiling llama.cpp, and a cold cargo build leaves a core idle for much of its time. The
# stage before the first test that needs it waits for it (instantly when it is present).
venv_log="$MINIBAR_CACHE/reference-venv.log"
"$ROOT/scripts/install-reference-venv.sh" >"$venv_log" 2>&1 &
venv_pid=$!
reference_python() {
  wait "$venv_pid" || { cat "$venv_log" >&2; return 1; }
}
run "format" cargo fmt --all -- --check
run "ui dependencies" "$ROOT/scripts/install-ui-deps.sh"
run "ui build" bash -c "cd ui && npm run -s build >/dev/null"
run "rust build" cargo test "${FEATURES[@]}" --no-run -q
# The embedded default model's GGUF, imported into the store by the minibar just built.
export MINIBAR_DEFAULT_GGUF="$("$ROOT/scripts/install-default-model.sh" "$MINIBAR_BIN")"
run "clippy" cargo clippy "${FEATURES[@]}" --all-targets -q -- -D warnings
run "macOS type-check" "$ROOT/scripts/check-macos.sh" -q
run "reference python" reference_python
run "rust tests" rust_tests
run "ui type-check" bash -c "cd ui && npm run -s check"
run "ui tests" bash -c "cd ui && npm test -s"
if [ -x src-tauri/tests/e2e/run.sh ]; then
  run "app end-to-end tests" src-tauri/tests/e2e/run.sh
fi

printf '\n%-24s %7s  %s\n' "stage" "time" "result"
printf '%s\n' "${times[@]}"
printf '%-24s %6ss\n' "total" "$((SECONDS - start))"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all test suites passed"
