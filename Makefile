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

.PHONY: setup run chat bench bench-memory bench-mlx-lm bench-app test test-rust test-ui test-e2e lint fmt clean-cache

setup:
	@scripts/setup.sh

# The app where there is a display; the same chat in the terminal where there is none.
run: setup
	@cargo build --release -q -p minibar
	@scripts/install-default-model.sh $(MINIBAR_RELEASE) >/dev/null
	@scripts/run-app.sh $(MINIBAR_RELEASE)

chat: setup
	@cargo build --release -q -p minibar
	@scripts/install-default-model.sh $(MINIBAR_RELEASE) >/dev/null
	@$(MINIBAR_RELEASE) chat

bench: setup
	@cargo build --release -q -p minibar
	@scripts/install-default-model.sh $(MINIBAR_RELEASE) >/dev/null
	@$(MINIBAR_RELEASE) bench $(BENCH_ARGS)

# The memory gauge's predictions against the engine's measured peaks (issue #4's table).
bench-memory: setup
	@cargo build --release -q -p minibar
	@MINIBAR_DEFAULT_GGUF=$$(scripts/install-default-model.sh $(MINIBAR_RELEASE)) \
	  MINIBAR_TEST_FIXTURES=$(MINIBAR_CACHE)/fixtures cargo bench -q -p minibar --bench memory_fit -- $(BENCH_ARGS)

# Minibar against mlx-lm (stock and with OpenBLAS) and llama.cpp on the same weights.
bench-mlx-lm: setup
	@cargo build --release -q -p minibar
	@scripts/install-default-model.sh $(MINIBAR_RELEASE) >/dev/null
	@$(VENV)/bin/python benches/compare_mlx_lm.py --minibar $(MINIBAR_RELEASE) $(BENCH_ARGS)

# The app's idle budget: launch to tray, idle memory and CPU, frame time while streaming.
bench-app: setup
	@cd ui && npm run -s build
	@cargo build --release -q -p minibar-app --features custom-protocol --bin minibar-app
	@python3 benches/app_idle.py --app $(CARGO_TARGET_DIR)/release/minibar-app $(BENCH_ARGS)

test: setup
	@cargo build -q -p minibar
	@scripts/run-tests.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cd ui && npm run check

fmt:
	cargo fmt --all
