# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: run test java clean

# extra options for `c360 run`, e.g. make run RUN_ARGS="--region de --as-of 2026-03-31"
RUN_ARGS ?=

run: java $(VENV)/.installed-run ## run the whole pipeline locally on sample data
	$(VENV)/bin/c360 run $(RUN_ARGS)

test: java $(VENV)/.installed-dev ## run the whole test suite (every tier that needs no cluster)
	$(PY) -m pytest

java:
	@ver=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1); \
	if [ -z "$$ver" ] || [ "$$ver" -lt 17 ]; then \
	  echo "Java 17 or newer is required by Spark (found: $${ver:-none})."; \
	  echo "Install it with:  sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless"; \
	  echo "(macOS: brew install openjdk@17), then make sure 'java -version' reports 17+."; \
	  exit 1; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: setup.py | $(VENV)/bin/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: setup.py | $(VENV)/bin/python
	$(PIP) install -q -e ".[dev]"
	touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) lakehouse mlruns spark-warehouse .pytest_cache build *.egg-info lib/*.egg-info
