# ruvicorn developer tasks. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# cargo test links the interpreter's shared library; tell the loader where it lives.
PYLIBDIR = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
CARGO_ENV = PYO3_PYTHON=$(abspath $(PY)) LD_LIBRARY_PATH=$(PYLIBDIR)
# Python the linters read; the benchmark's load generator is a crate of its own.
PY_PATHS := ruvicorn tests examples bench .ci
WSLOAD := --manifest-path bench/wsload/Cargo.toml
WSLOAD_BUILD := $(WSLOAD) --locked --target-dir target/wsload

.PHONY: help
help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
		'{ name[NR] = $$1; text[NR] = $$2; if (length($$1) > w) w = length($$1) } \
		END { for (i = 1; i <= NR; i++) printf "  %-*s  %s\n", w, name[i], text[i] }'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

.PHONY: install
install: $(PY) ## Build the extension (release) and install ruvicorn with uvloop into .venv
	$(PIP) install -q -e '.[standard]'

.PHONY: install-dev
install-dev: $(PY) ## Install ruvicorn plus everything tests and linters need
	$(PIP) install -q -e '.[standard,test,lint]'

.PHONY: build
build: $(PY) ## Rebuild the native extension in release mode after Rust changes
	$(PIP) install -q -e '.[standard]' --no-deps

.PHONY: build-dev
build-dev: $(PY) ## Rebuild the native extension unoptimized (no LTO): quick rebuilds while iterating
	MATURIN_PEP517_ARGS="--profile dev" $(PIP) install -q -e '.[standard]' --no-deps

.PHONY: run
run: ## Serve examples/hello.py on http://127.0.0.1:8000
	@echo "make run: building the native extension and installing into $(VENV) (about 30 s the first time)..."
	@$(MAKE) --no-print-directory install
	$(VENV)/bin/ruvicorn --app-dir examples hello:app

.PHONY: lint
lint: lint-python lint-rust ## Every linter: lint-python, then lint-rust

.PHONY: lint-python
lint-python: ## ruff (complexity rules included), mypy --strict, the .pyi stub check (seconds)
	$(VENV)/bin/ruff check $(PY_PATHS)
	$(VENV)/bin/ruff format --check $(PY_PATHS)
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest ruvicorn._native --allowlist .ci/stubtest-allowlist

.PHONY: lint-rust
lint-rust: msrv ## rustfmt and clippy -D warnings, for the workspace, the fuzz targets and bench/wsload
	cargo fmt --all -- --check
	cargo fmt --manifest-path $(FUZZ_DIR)/Cargo.toml -- --check
	$(CARGO_ENV) cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --manifest-path $(FUZZ_DIR)/Cargo.toml --locked --all-targets -- -D warnings
	cargo fmt $(WSLOAD) -- --check
	cargo clippy $(WSLOAD_BUILD) --all-targets -- -D warnings

.PHONY: msrv
msrv: ## Check the declared rust-version offline (.ci/check_msrv.py says how)
	$(PY) .ci/check_msrv.py

.PHONY: test-rust
test-rust: ## cargo test (parser, framing, codec units and property tests; bench/wsload)
	$(CARGO_ENV) cargo test --workspace
	cargo test $(WSLOAD_BUILD)

.PHONY: test-python
test-python: ## pytest: units, in-process protocol tests and black-box tests against real servers
	$(VENV)/bin/pytest -q

.PHONY: test-fast
test-fast: test-rust ## Rust tests and every Python test that starts no server process (seconds)
	$(VENV)/bin/pytest -q -m "not blackbox"

.PHONY: test
test: test-rust test-python ## Every test

.PHONY: check
check: install-dev lint fuzz-smoke test ## From a fresh clone: install, build (release), lint, fuzz smoke, run every test

# Every interpreter users run. Each gets its own virtualenv and its own build of the
# extension (a per-version build keeps the hot path on the full C API; abi3 would not);
# the Rust target dir is shared, so the sans-IO core compiles once.
EXTRA_PYTHONS ?= 3.12 3.13
# The newest pyenv build of python3.X, else a python3.X on PATH that runs.
find_python = $(or $(shell ls -d $(HOME)/.pyenv/versions/$(1).*/bin/python$(1) 2>/dev/null | sort -V | tail -n 1),$(shell python$(1) -c 'import sys; print(sys.executable)' 2>/dev/null))

.PHONY: check-all
check-all: check $(addprefix test-on-,$(EXTRA_PYTHONS)) ## check, then every Python test again on 3.12 and 3.13 (one: make test-on-3.13)

.PHONY: test-on-%
test-on-%: ## Build and run the Python tests on another interpreter: make test-on-3.13
	@test -n "$(call find_python,$*)" || { echo "make: no python$* found (on PATH or under ~/.pyenv/versions)"; exit 2; }
	@echo "== Python $* =="
	$(MAKE) --no-print-directory install-dev PYTHON=$(call find_python,$*) VENV=.venv-$*
	.venv-$*/bin/pytest -q

.PHONY: format
format: ## Apply ruff and rustfmt formatting
	$(VENV)/bin/ruff check --fix $(PY_PATHS)
	$(VENV)/bin/ruff format $(PY_PATHS)
	cargo fmt --all
	cargo fmt $(WSLOAD)

.PHONY: bench
bench: ## Benchmark ruvicorn against its peers (bench/README.md); BENCH_ARGS=--quick for a smoke run
	$(PYTHON) bench/run.py $(BENCH_ARGS)

.PHONY: soak
soak: install-dev ## Bounded soak (~3 min): 2 workers, mixed load, reloads, resizes, a SIGKILL, recycling
	$(PY) bench/soak.py $(SOAK_ARGS)

# Fuzzing (docs/fuzzing.md): libFuzzer through libfuzzer-sys, built by plain cargo on
# stable Rust with the coverage flags below (no sanitizer, so no nightly flags).
FUZZ_DIR := native/fuzz
FUZZ_TARGETS := head chunked ws proxy proxy_protocol h2 h3 h3_uni
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_ARGS ?=
FUZZ_TRIPLE = $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_BIN = $(FUZZ_DIR)/target/$(FUZZ_TRIPLE)/release
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
	--cfg fuzzing

.PHONY: fuzz-build
fuzz-build: ## Build the fuzz targets (native/fuzz) with coverage instrumentation
	cd $(FUZZ_DIR) && RUSTFLAGS="$(FUZZ_RUSTFLAGS)" cargo build --release --locked --target $(FUZZ_TRIPLE)

.PHONY: fuzz
fuzz: fuzz-build ## Fuzz each target for FUZZ_SECONDS (default 60); crashes land in native/fuzz/artifacts/
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/work/$$t $(FUZZ_DIR)/artifacts/$$t; \
		echo "fuzz $$t: $(FUZZ_SECONDS) s"; \
		$(FUZZ_BIN)/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/artifacts/$$t/ $(FUZZ_ARGS) \
			$(FUZZ_DIR)/work/$$t $(FUZZ_DIR)/corpus/$$t 2>&1 \
			| awk '/panicked/ { n = 4 } n-- > 0 || /^(stat::number_of_executed_units|stat::new_units_added|SUMMARY|Done)/' ; \
		test $${PIPESTATUS[0]} -eq 0 || { echo "fuzz $$t: FAILED (input saved under $(FUZZ_DIR)/artifacts/$$t/)"; exit 1; }; \
	done

.PHONY: fuzz-smoke
fuzz-smoke: ## Short fixed-seed run of each fuzz target from its seed corpus (part of make check)
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) FUZZ_ARGS="-seed=1 $(FUZZ_ARGS)"

.PHONY: clean
clean: ## Remove build products and the virtualenv
	rm -rf $(VENV) .venv-3.* target $(FUZZ_DIR)/target $(FUZZ_DIR)/work .mypy_cache .ruff_cache .pytest_cache
