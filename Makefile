# Two entry points for a fresh machine (see README): `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pinned: an unpinned torch pulls several GB of CUDA wheels. Elsewhere, for the CPU build:
#   make quickstart PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0
PIP_EXTRA ?=

.PHONY: install browser quickstart test lint clean-venv

$(BIN)/suite: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing the suite, torch and the models into $(VENV) (about 1 GB to download the first time)"
	$(BIN)/python -m pip install $(PIP_EXTRA) "$(TORCH)" -e ".[test]"
	@# An editable install leaves the suite's own modules uncompiled; where PYTHONDONTWRITEBYTECODE
	@# is set (many container images), every command would compile them again (+30 ms to `--help`).
	$(BIN)/python -m compileall -q suite services plugins
	@touch $@

# The example plugin lives outside the suite's package; its tests run with the suite's.
$(VENV)/.examples: $(BIN)/suite examples/suite-ticket-router/pyproject.toml
	$(BIN)/python -m pip install --quiet --no-deps -e examples/suite-ticket-router
	@touch $@

install: $(BIN)/suite

quickstart: install
	$(BIN)/suite quickstart

# Debian's chromium drives tests/web (they skip, saying why, without it). Installed only as root
# with apt-get, and `make test` says so before it does; SKIP_BROWSER=1 never installs it.
browser:
	@test -x /usr/bin/chromium || [ -n "$(SKIP_BROWSER)" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && echo "make test: installing Debian's chromium (apt-get install chromium) for the browser tests in tests/web" \
	  && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "no chromium: the browser tests in tests/web will skip (run as root with apt-get to install it)"

test: install $(VENV)/.examples browser
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean-venv:
	rm -rf $(VENV)
