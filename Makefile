# Two commands a newcomer needs: `make demo` and `make test`. Each bootstraps .venv from the
# pinned dependencies on a fresh machine (Python 3.11) and then runs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt

.PHONY: demo test bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.core: $(BIN)/activate pyproject.toml $(LOCK)
	$(BIN)/pip install --quiet -c $(LOCK) -e .
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[test]'
	touch $@

demo: $(VENV)/.core
	$(BIN)/cxlens demo --out demo

test: $(VENV)/.test
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

bench: $(VENV)/.test
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) demo .pytest_cache
