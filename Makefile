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

.PHONY: setup run chat bench test test-rust test-ui test-e2e lint fmt clean-cache

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

test: setup
	@cargo build -q -p minibar
	@scripts/run-tests.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cd ui && npm run check

fmt:
	cargo fmt --all
