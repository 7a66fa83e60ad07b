#!/usr/bin/env bash
# Everything `make test` needs, installed when missing; fast when all is present.
# `setup.sh run` installs only what running Minibar needs (no reference Python, which only the
# tests and the comparisons use; the app's UI packages are installed by run-app.sh when there
# is a display to show it on).
source "$(dirname "$0")/common.sh"
"$ROOT/scripts/install-system-packages.sh"
command -v cargo >/dev/null || die "Rust is needed: install rustup from https://rustup.rs"
"$ROOT/scripts/install-mlx-linux.sh"
[ "${1:-}" = run ] && exit 0
"$ROOT/scripts/install-reference-venv.sh"
"$ROOT/scripts/install-ui-deps.sh"
