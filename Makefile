# Set-up, checks and a demo. Each target installs missing system packages (scripts/system-deps),
# creates .venv (python3 -m venv) and installs nodeloom into it when missing or when
# pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NAME ?= Ada
# llama-cpp-python compiles llama.cpp when pip installs it. Its default native build enables
# Intel AMX on CPUs that have it, and generation then segfaults in ggml_backend_amx_mul_mat:
# build for AVX2 instead (portable across x86-64 machines from the last decade).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
BUILD_JOBS ?= 2

.PHONY: setup test lint serve demo clean

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml scripts/system-deps
	@scripts/system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing nodeloom and its test tools into $(VENV) (compiling llama-cpp-python takes ~15 min the first time) ..."
	@CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(BUILD_JOBS) \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy

# pytest exits 5 when it collects no tests: that is a broken suite, not a pass.
test: lint
	@$(BIN)/pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; \
	exit $$rc

# The main job: the canvas and the API on http://127.0.0.1:8080, the embedded model, and the
# example workflows (added once to the database; their data files copied into ./workspace).
serve: $(INSTALLED)
	$(BIN)/nodeloom serve --examples workflows

demo: $(INSTALLED)
	$(BIN)/nodeloom run workflows/greeting.json -i name='$(NAME)'
	$(BIN)/nodeloom run workflows/quiz.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
