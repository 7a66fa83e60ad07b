# Shared paths and helpers for the set-up scripts; sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=versions.env
source "$ROOT/scripts/versions.env"
# Heavy artifacts live outside the clone so fresh clones (CI) reuse them.
MINIBAR_CACHE="${MINIBAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minibar}"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MINIBAR_CACHE/target}"
VENV="$MINIBAR_CACHE/venv"
OS="$(uname -s)"
ARCH="$(uname -m)"
export MINIBAR_CACHE CARGO_TARGET_DIR
mkdir -p "$MINIBAR_CACHE"

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
