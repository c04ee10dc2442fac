# Two entry points for a fresh machine (see README): `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pinned: an unpinned torch pulls several GB of CUDA wheels. Elsewhere, for the CPU build:
#   make quickstart PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0
PIP_EXTRA ?=

.PHONY: install quickstart test lint clean-venv

$(BIN)/suite: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_EXTRA) "$(TORCH)" -e ".[test]"
	$(BIN)/python -m pip install --quiet -e examples/suite-ticket-router
	@touch $@

install: $(BIN)/suite

quickstart: install
	$(BIN)/suite quickstart

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
