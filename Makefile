# Two entry points for a fresh machine (Python 3.11, pip, root):
#   make demo   set up .venv and run the main job on the embedded synthetic data
#   make test   set up .venv and run the default test suite (what .ci/run calls)
PY        ?= python3.11
VENV      ?= .venv
BIN       := $(VENV)/bin
DATA_DIR  ?= $(abspath ../shared/data)
export DUET_DATA_DIR ?= $(DATA_DIR)

.PHONY: venv demo test test-all lint typecheck clean

# torch goes in first, pinned, so that nothing later lets pip pick a CUDA build.
$(BIN)/duet-sim: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[ray,report,dev]"
	touch $@

venv: $(BIN)/duet-sim

# the quickstart scenario: trains base and DUET, then 300 simulated phones x 4 sessions
demo: venv
	rm -rf runs/demo
	$(BIN)/duet-sim run configs/scenarios/quickstart.yaml --out runs/demo

# lint first: the formatter owns the layout, no line passes 100 characters, layers hold
test: venv lint
	$(BIN)/python -m pytest -m "not slow" -q

test-all: venv
	$(BIN)/python -m pytest -q

# the formatter owns the layout; the import layering contract is pyproject's [tool.importlinter]
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache
