# Set-up, checks and a demo. Each target installs missing system packages (scripts/system-deps),
# creates .venv (python3 -m venv) and installs nodeloom into it when missing or when
# pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NAME ?= Ada

.PHONY: setup test lint demo clean

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml scripts/system-deps
	@scripts/system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing nodeloom and its test tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy

# pytest exits 5 when it collects no tests: that is a broken suite, not a pass.
test: lint
	@$(BIN)/pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; \
	exit $$rc

demo: $(INSTALLED)
	$(BIN)/nodeloom run workflows/greeting.json -i name='$(NAME)'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
