# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
# Bytecode is compiled at install time: where PYTHONDONTWRITEBYTECODE is set (as on this project's
# machines) Python would otherwise compile every imported module on every start, which made each
# `farm` command spend 1.5 s compiling SQLAlchemy, Celery and friends.
UV_INSTALL := $(UV) pip install --quiet --compile-bytecode --python $(BIN)/python
# AMD Quark (the fpga extra) imports torch: take the CPU build, from a local wheel folder when the
# machine has one (PyPI's default torch pulls several GB of CUDA packages).
TORCH_CPU := torch==2.13.0
TORCH_SOURCE := $(if $(wildcard /opt/wheels/torch-*),--find-links /opt/wheels,--index-url https://download.pytorch.org/whl/cpu)
EXTRAS := cpu,arm,fpga,torch,tabular,report,samples,s3,monitor

.PHONY: demo test check lint down clean bench-scoring refusals-table

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv

$(VENV)/.installed-torch: | $(UV)
	$(UV_INSTALL) $(TORCH_SOURCE) '$(TORCH_CPU)'
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(VENV)/.installed-torch
	$(UV_INSTALL) -e '.[$(EXTRAS)]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/.installed-torch
	$(UV_INSTALL) -e '.[$(EXTRAS),bench,dev]'
	touch $@ $(VENV)/.installed-demo

# Start the local farm; train a small digit classifier on real images (scikit-learn's digits) and
# convert it for cpu, arm and fpga, calibrated and judged on labelled images; print the report;
# export the verified variants (a Triton model repository, and bundles); then score all 1,797
# images with the verified variants on the three classes at once.
SAMPLES := .farm/samples
demo: $(VENV)/.installed-demo
	$(BIN)/farm up --hw cpu,arm,fpga
	$(BIN)/python -m farm.samples $(SAMPLES)
	$(BIN)/farm submit convert $(SAMPLES)/digits.keras --hw cpu,arm,fpga \
		--calib $(SAMPLES)/digits_calib.npz --eval $(SAMPLES)/digits_eval.npz --wait
	$(BIN)/farm report $$($(BIN)/farm jobs -n 1 | cut -d' ' -f1) --plot .farm/demo-speedups.png
	$(BIN)/farm artifacts $$($(BIN)/farm jobs -n 1 | cut -d' ' -f1) --to .farm/demo-variants
	rm -rf .farm/demo-deploy
	$(BIN)/farm export $$($(BIN)/farm jobs -n 1 | cut -d' ' -f1) --format triton --to .farm/demo-deploy
	$(BIN)/farm submit infer $$($(BIN)/farm jobs -n 1 | cut -d' ' -f1) --data $(SAMPLES)/digits_images.parquet \
		--out .farm/demo-scores --hw cpu,arm,fpga --columns image --keep id,label --shard-rows 200 --overwrite --wait
	$(BIN)/farm result $$($(BIN)/farm jobs -n 1 | cut -d' ' -f1) --to .farm/demo-scores.parquet
	@echo "the farm keeps running; stop it with: $(BIN)/farm down"

# Lint, types and the layer contracts: the static half of both tiers.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The fast tier for the edit loop (90 s or less): lint, types, layers, and every test that needs
# no service (no Redis, no worker, no PostgreSQL, no S3 server), no deployment tool (Ansible,
# Compose: tests/deploy) and no whole-variant build (`slow`), two at a time.
check: lint
	$(BIN)/pytest -n 2 --dist loadgroup -m "not services and not deploy and not slow"

# Every test: unit, and integration against real Redis, Celery workers, SQLite and PostgreSQL;
# three at a time (they mostly wait on their workers), then those that time things, alone.
test: lint
	$(BIN)/pytest -n 3 --dist loadgroup -m "not serial" --durations=10
	$(BIN)/pytest -m serial --durations=2

# The batch-scoring benchmark of the README (installs skl2onnx and Ray Data, the peer it is measured against).
bench-scoring: $(VENV)/.installed-test
	$(UV_INSTALL) -e '.[$(EXTRAS),bench,dev,peers]'
	$(BIN)/python benchmarks/batch_scoring.py

# The README's table of refusals, written by the tests that cause each one.
refusals-table: $(VENV)/.installed-test
	FARM_WRITE_REFUSALS=1 $(BIN)/pytest -q tests/farm/cli/test_errors.py \
		tests/integration/test_infer.py::test_bad_scoring_input_is_one_line_and_queues_nothing \
		tests/farm/client/test_export.py::test_a_folder_that_is_not_empty_and_an_unknown_format_are_refused \
		tests/farm/client/test_export.py::test_unfinished_scoring_and_unverified_jobs_are_refused \
		tests/integration/test_monitor.py::test_farm_workers_names_an_unreachable_broker_in_one_line \
		tests/integration/test_monitor.py::test_flower_refuses_to_serve_the_fleet_unprotected

down:
	$(BIN)/farm down

clean: down
	rm -rf .farm
