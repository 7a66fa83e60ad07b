#!/usr/bin/env bash
# Installs the system packages Minibar builds, runs and tests with, when any is missing.
source "$(dirname "$0")/common.sh"

# Build: MLX on Linux (cmake, libclang for bindgen, OpenBLAS), Tauri (webkit, gtk, appindicator).
# Test: Xvfb and WebKitWebDriver for the app, a throwaway GNOME Keyring (gdbus checks it),
# Chromium for the UI, tmux for the terminal chat; trayer/xdotool/xwininfo for the app benchmark.
DEBIAN_PACKAGES=(
  build-essential pkg-config cmake curl file git
  libclang-dev libopenblas0-pthread
  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libsoup-3.0-dev
  libjavascriptcoregtk-4.1-dev libgtk-3-dev libxdo-dev libssl-dev
  xvfb xauth dbus dbus-x11 webkit2gtk-driver fonts-dejavu-core trayer xdotool
  libsecret-1-dev gnome-keyring libglib2.0-bin x11-utils imagemagick
  chromium python3-venv nodejs npm tmux
)

if [ "$OS" = Darwin ]; then
  xcode-select -p >/dev/null 2>&1 || die "install the Xcode command line tools: xcode-select --install"
  command -v cmake >/dev/null || { command -v brew >/dev/null && brew install cmake; } \
    || die "cmake is needed: install Homebrew (https://brew.sh) then 'brew install cmake'"
  command -v node >/dev/null || { command -v brew >/dev/null && brew install node; } \
    || die "Node.js is needed: 'brew install node'"
  exit 0
fi

command -v dpkg-query >/dev/null || die "this set-up knows apt (Debian/Ubuntu); install the equivalents of: ${DEBIAN_PACKAGES[*]}"
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  # nodejs/npm may come from elsewhere (nvm, NodeSource): accept any working ones.
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
