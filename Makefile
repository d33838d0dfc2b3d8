# autofab developer entry points. Each target creates and reuses .venv by itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= connect,api,plan,dev
PYTEST_ARGS ?=

.PHONY: run test lint audit bench install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $(STAMP)

install: $(STAMP)

## run: the default site (built-in twin, DuckDB file) for one simulated shift
run: $(STAMP)
	$(VENV)/bin/autofab run
	@echo "dashboard: $(VENV)/bin/autofab user add NAME --role admin   (once), then"
	@echo "           $(VENV)/bin/autofab serve   and open http://127.0.0.1:8000"

## test: the whole test suite (services on 127.0.0.1 are used when present)
test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy

## audit: known vulnerabilities of the installed dependencies (needs PyPI / OSV access)
audit: $(STAMP)
	$(VENV)/bin/pip-audit -l --strict --skip-editable

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs
