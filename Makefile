# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the project into it first (again when pyproject.toml changed):
# the demo only what the proxy needs to run, the tests their tools too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-core test-image soak

demo: $(VENV)/.installed
	$(BIN)/signing-proxy demo

test: $(VENV)/.installed-test
	bash .ci/chromium
	bash .ci/docker
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

test-core: $(VENV)/.installed-test
	$(BIN)/pytest tests/core tests/config tests/test_layout.py

test-image: $(VENV)/.installed-test
	bash .ci/docker
	$(BIN)/pytest -m docker

soak: $(VENV)/.installed-test
	$(BIN)/pytest -m soak

$(VENV)/.installed: pyproject.toml
	@echo "setting up $(VENV): signing-proxy and its runtime dependencies (pip install -e .)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "installing the test tools into $(VENV) (pip install -e '.[test]')"
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@
