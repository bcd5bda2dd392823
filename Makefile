# Set-up and everyday commands. Each target creates the virtual environment at .venv when it is missing
# and reinstalls when pyproject.toml or the lock file changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ttdnet-installed
LOCK := requirements/constraints.txt
DEMO ?= outputs/demo
PYTEST_ARGS ?=
# Offline by design: no test or default path may reach a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WANDB_MODE ?= offline

.PHONY: install demo test lint format lock

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ttdnet needs Python >= 3.11; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job: build the environment, then run EEG -> images end to end on synthetic data (see docs/demo.md).
## A rerun reuses finished steps; `make demo DEMO_ARGS=--fresh` starts over.
DEMO_ARGS ?=
demo: $(STAMP)
	$(BIN)/ttdnet demo --output_dir $(DEMO) $(DEMO_ARGS)

## The test suite: lint, then the default (fast, offline, CPU) tests.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Re-pin every dependency to what is installed in .venv.
lock: $(STAMP)
	{ echo "# Exact versions every machine installs (make install passes this as pip constraints)."; \
	  echo "# Regenerate after changing dependencies: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -iE '^(pip|setuptools|wheel)=='; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
