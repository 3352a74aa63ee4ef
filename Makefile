# The two commands a new user runs: `make demo` and `make test`.
# Both create or refresh .venv from pyproject.toml first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
FORCE  ?=
VIDEO  ?=

.PHONY: setup system demo test lint bench dist fuzz clean

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the project's dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages: ffmpeg for 'roi encode' (installed when missing and we are root).
system:
	@if ! command -v ffmpeg >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's ffmpeg (needed by 'vmafx-saliency roi encode')"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  else \
	    echo "note: ffmpeg is missing: 'roi encode' needs it (Debian: sudo apt-get install ffmpeg)"; \
	  fi; \
	fi

setup: $(STAMP) system

demo: setup
	$(PY) -m vmafx_saliency.cli.demo $(if $(FORCE),--force,) $(if $(VIDEO),--video $(VIDEO),)

# Lint is part of the test command so CI keeps ruff and mypy clean.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/scan_speed.py
	$(PY) benchmarks/producer_cost.py
	$(PY) benchmarks/pipeline_overlap.py

# The scanner's fuzz test, longer than make test runs it: make fuzz MUTANTS=1000000 SEED=7
MUTANTS ?= 200000
SEED ?= 20240607
fuzz: setup
	VMAFX_SALIENCY_FUZZ_MUTANTS=$(MUTANTS) VMAFX_SALIENCY_FUZZ_SEED=$(SEED) \
	  $(PY) -m pytest -q -p no:cacheprovider tests/supply/test_scan.py -k fuzz

# A wheel and an sdist of the package, the default model inside (pip install dist/*.whl).
dist: setup
	rm -rf dist
	$(PY) -m build --outdir dist .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build
