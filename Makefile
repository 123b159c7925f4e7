# Every target bootstraps .venv from the package registries when it is missing, and is quick
# when it is already there. The environment is installed from the committed lock files, never
# from "whatever is newest today": requirements/demo.lock (what the demo needs) and
# requirements/dev.lock (everything in .[all,tls,test,test-vectors]). `make lock` refreshes both;
# `make test-latest` tries the newest versions that pyproject.toml allows, in a venv of its own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.demo-installed
DEV_STAMP := $(VENV)/.dev-installed
# Hash-checked, no resolver: the lock is complete. The project itself goes in editable and
# without build isolation, so that its build backend is the locked one too.
INSTALL_LOCK := $(BIN)/python -m pip install --quiet --require-hashes --no-deps -r
INSTALL_SELF := $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .

LATEST_VENV := .venv-latest
# SeQUeNCe, the peer of `qkd.repeater.vs_sequence`, in a venv of its own (never in the locks):
# 0.8.5 is the newest release that installs on Python 3.11 (it requires >= 3.11).
SEQUENCE_VENV := .venv-sequence
SEQUENCE_VERSION := 0.8.5
LOCK_VENV := .venv-lock
UV_VERSION := 0.13.9

.PHONY: demo test test-slow test-liboqs-all test-latest bench bench-sequence lint lock venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): requirements/demo.lock pyproject.toml | $(BIN)/python
	$(INSTALL_LOCK) requirements/demo.lock
	$(INSTALL_SELF)
	touch $@

$(DEV_STAMP): requirements/dev.lock pyproject.toml | $(BIN)/python
	$(INSTALL_LOCK) requirements/dev.lock
	$(INSTALL_SELF)
	touch $@ $(DEMO_STAMP)

venv: $(DEV_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/agile demo

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m slow

# The liboqs provider over every algorithm liboqs enables (the default suite runs one
# parameter set per family and every ML-KEM and ML-DSA set). Fails when liboqs is not
# found: point OQS_INSTALL_PATH at an installed liboqs.
test-liboqs-all: $(DEV_STAMP)
	$(BIN)/python -c "import pqc, sys; s = {p.name: p for p in pqc.providers()}['liboqs']; \
		print('liboqs:', s.version if s.available else s.reason); sys.exit(not s.available)"
	$(BIN)/python -m pytest -q -k liboqs tests/pqc

bench: $(DEV_STAMP)
	$(BIN)/agile bench --json

$(SEQUENCE_VENV)/.installed:
	$(PYTHON) -m venv $(SEQUENCE_VENV)
	$(SEQUENCE_VENV)/bin/python -m pip install --quiet sequence==$(SEQUENCE_VERSION)
	touch $@

# The repeater figures of bench/network.py with SeQUeNCe present, so that they include
# `qkd.repeater.vs_sequence` (`agile bench` measures it too whenever .venv-sequence exists).
bench-sequence: $(DEV_STAMP) $(SEQUENCE_VENV)/.installed
	$(BIN)/python bench/network.py --repeater-only

lint: $(DEV_STAMP)
	$(BIN)/ruff check agile qkd pqc bench tests requirements
	$(BIN)/ruff format --check agile qkd pqc bench tests requirements
	$(BIN)/mypy

# Refresh both lock files with a pinned uv (requirements/lock.py says how the pair
# cryptography / cryptography-vectors is chosen).
lock:
	test -x $(LOCK_VENV)/bin/uv || { $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION); }
	$(PYTHON) requirements/lock.py --uv $(LOCK_VENV)/bin/uv

# The newest versions pyproject.toml allows, in a fresh venv, to find breakage before users do.
# A test-data package with no release matching the installed cryptography is left out; the
# tests that need it skip and say so. Not part of the default CI.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet -e '.[all,test]'
	version=$$($(LATEST_VENV)/bin/python -c 'import cryptography; print(cryptography.__version__)'); \
	$(LATEST_VENV)/bin/python -m pip install --quiet "cryptography-vectors==$$version" 2>/dev/null \
		|| echo "test-latest: no cryptography-vectors $$version in the registry; its KAT tests skip"
	$(LATEST_VENV)/bin/python -m pip list --format=freeze | grep -iE '^(cryptography|numpy|pydantic|pqcrypto|liboqs-python|httpx|pytest|hypothesis)(-vectors)?=='
	$(LATEST_VENV)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(LOCK_VENV) $(SEQUENCE_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
