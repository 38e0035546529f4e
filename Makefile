# physioemo: `make demo` runs the main job end to end; `make test` runs the test suite.
# Both create the virtual environment in .venv first (idempotent).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<81" wheel
	$(BIN)/pip install -q -c constraints.txt -e ".[all,dev]"
	touch $@

demo: setup
	$(BIN)/physioemo demo --out demo-out

test: setup
	$(BIN)/ruff check physioemo tests benchmarks pipelines
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/dsp.py
