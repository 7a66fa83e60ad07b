#!/usr/bin/env bash
# Everything `make run` and `make test` need, installed when missing; fast when all is present.
source "$(dirname "$0")/common.sh"
"$ROOT/scripts/install-system-packages.sh"
command -v cargo >/dev/null || die "Rust is needed: install rustup from https://rustup.rs"
"$ROOT/scripts/install-mlx-linux.sh"
"$ROOT/scripts/install-reference-venv.sh"
"$ROOT/scripts/install-ui-deps.sh"
