# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv

.PHONY: demo test lint down clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv

$(VENV)/.installed-demo: pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[tf]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python -e '.[tf,dev]'
	touch $@ $(VENV)/.installed-demo

# Start the local farm, convert a sample TensorFlow model for cpu, print the result.
demo: $(VENV)/.installed-demo
	$(BIN)/farm up
	$(BIN)/python -m workers.samples .farm/samples
	$(BIN)/farm submit convert .farm/samples/classifier.pb --hw cpu --wait
	$(BIN)/farm artifacts $$($(BIN)/farm jobs -n 1 | cut -d' ' -f1) --to .farm/demo-variants
	@echo "the farm keeps running; stop it with: $(BIN)/farm down"

# Every test: unit, and integration against real Redis, Celery workers, SQLite and PostgreSQL.
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/pytest

down:
	$(BIN)/farm down

clean: down
	rm -rf .farm
