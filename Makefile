# Minibar: `make run` starts the app (or the terminal chat where there is no display);
# `make test` runs every test. Both install whatever is missing first.

SHELL := /bin/bash
ROOT := $(abspath .)
MINIBAR_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/minibar
# Builds live outside the clone so fresh clones (CI) reuse them.
export CARGO_TARGET_DIR ?= $(MINIBAR_CACHE)/target
export MINIBAR_CACHE
VENV := $(MINIBAR_CACHE)/venv
MINIBAR_DEBUG := $(CARGO_TARGET_DIR)/debug/minibar
MINIBAR_RELEASE := $(CARGO_TARGET_DIR)/release/minibar

.PHONY: help setup setup-run run chat bench bench-memory bench-mlx-lm bench-serve bench-cluster bench-app test lint check-macos fmt

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## install what is missing (system packages, MLX on Linux, reference Python, UI packages)
	@scripts/setup.sh

# What running Minibar needs, without the reference Python the tests compare against.
setup-run:
	@scripts/setup.sh run

# The app where there is a display; the same chat in the terminal where there is none.
run: setup-run ## start the app with the default model (the terminal chat where there is no display)
	@scripts/run-app.sh

chat: setup-run ## chat with the default model in the terminal
	@cargo build --release -q -p minibar
	@scripts/install-default-model.sh $(MINIBAR_RELEASE) >/dev/null
	@$(MINIBAR_RELEASE) chat

bench: setup-run ## the benchmark, headless (BENCH_ARGS=--full for depth and batch scaling)
	@cargo build --release -q -p minibar
	@scripts/install-default-model.sh $(MINIBAR_RELEASE) >/dev/null
	@$(MINIBAR_RELEASE) bench $(BENCH_ARGS)

# The memory gauge's predictions against the engine's measured peaks (issue #4's table).
bench-memory: setup ## the memory gauge's predicted peaks against the engine's measured ones
	@cargo build --release -q -p minibar
	@MINIBAR_DEFAULT_GGUF=$$(scripts/install-default-model.sh $(MINIBAR_RELEASE)) \
	  MINIBAR_TEST_FIXTURES=$(MINIBAR_CACHE)/fixtures MINIBAR_REFERENCE_PYTHON=$(ROOT)/scripts/reference-python \
	  cargo bench -q -p minibar --bench memory_fit -- $(BENCH_ARGS)

# Minibar against mlx-lm (stock and with OpenBLAS) and llama.cpp on the same weights.
bench-mlx-lm: setup ## Minibar against mlx-lm and llama.cpp on the same weights
	@cargo build --release -q -p minibar
	@scripts/install-default-model.sh $(MINIBAR_RELEASE) >/dev/null
	@$(VENV)/bin/python benches/compare_mlx_lm.py --minibar $(MINIBAR_RELEASE) $(BENCH_ARGS)

# The local server against mlx_lm.server on the same f32 weights and OpenBLAS, in one run:
# tokens/s and time to first token at 1-32 streaming clients, the ratios and the targets.
bench-serve: setup ## the local server against mlx_lm.server: tokens/s and TTFT at 1-32 clients
	@cargo build --release -q -p minibar
	@scripts/install-default-model.sh $(MINIBAR_RELEASE) >/dev/null
	@cargo bench -q -p minibar-serve --bench serve --no-run
	@$(VENV)/bin/python benches/serve_vs_mlx_lm.py --minibar $(MINIBAR_RELEASE) \
	  --bench "cargo bench -q -p minibar-serve --bench serve --" $(BENCH_ARGS)

# One model over 1, 2 and 3 ranks on loopback through MLX's ring backend (issue #16).
bench-cluster: setup-run ## one model over 1-3 ranks on loopback: TTFT, tok/s, bytes and comm per token
	@cargo build --release -q -p minibar
	@MINIBAR_DEFAULT_GGUF=$$(scripts/install-default-model.sh $(MINIBAR_RELEASE)) \
	  cargo bench -q -p minibar-cluster --bench cluster -- $(BENCH_ARGS)

# The app's idle budget: launch to tray, idle memory and CPU, frame time while streaming.
bench-app: setup ## the app: launch to tray, idle memory and CPU, frame time while streaming
	@cd ui && npm run -s build
	@cargo build --release -q -p minibar-app --features custom-protocol --bin minibar-app
	@python3 benches/app_idle.py --app $(CARGO_TARGET_DIR)/release/minibar-app $(BENCH_ARGS)

# The reference Python is installed by run-tests.sh, alongside the first compile.
test: setup-run ## every test: lint, macOS type-check, Rust, UI, end-to-end; a timing table at the end
	@scripts/run-tests.sh

lint: setup ## formatting, clippy (warnings are errors) and the UI's type-check
	@cd ui && npm run -s build >/dev/null
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --features minibar-app/custom-protocol -- -D warnings
	cd ui && npm run check

check-macos: setup ## type-check the workspace for aarch64-apple-darwin (the cfg(macos) code)
	@cd ui && npm run -s build >/dev/null
	@scripts/check-macos.sh

fmt: ## format the Rust code
	cargo fmt --all
