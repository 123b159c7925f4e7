# Every target bootstraps .venv from the package registries when it is missing, and is quick
# when it is already there (the stamp is rebuilt only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench lint venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	# The vectors package must match the installed cryptography exactly.
	$(BIN)/python -m pip install --quiet "cryptography-vectors==$$($(BIN)/python -c 'import cryptography; print(cryptography.__version__)')"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/agile demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/agile bench --json

lint: $(STAMP)
	$(BIN)/ruff check agile qkd pqc bench tests
	$(BIN)/ruff format --check agile qkd pqc bench tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
