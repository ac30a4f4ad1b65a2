# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the project into it first (only when pyproject.toml changed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test soak

demo: $(VENV)/.installed
	$(BIN)/signing-proxy demo

test: $(VENV)/.installed
	bash .ci/chromium
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

soak: $(VENV)/.installed
	$(BIN)/pytest -m soak

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@
