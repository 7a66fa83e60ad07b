#!/usr/bin/env bash
# The web UI's npm packages, exactly as package-lock.json pins them.
source "$(dirname "$0")/common.sh"
cd "$ROOT/ui"
stamp="node_modules/.minibar-lock-$(sha256sum package-lock.json | cut -c1-16)"
[ -f "$stamp" ] && exit 0
step "installing the UI's npm packages"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
touch "$stamp"
