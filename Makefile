# invrecon: `make run` and `make test` work on a fresh clone; each sets itself up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_DATE ?= 2026-11-30
WORLD  := fixtures/world

.PHONY: setup run test bench profile lint fixtures clean dist package-check

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock setuptools==80.9.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)

## run the nightly job on the committed synthetic world (outputs under out/), then the report
run: setup
	$(BIN)/invrecon batch --config $(WORLD)/config.yaml --run-date $(RUN_DATE) --output out
	$(BIN)/invrecon report --config $(WORLD)/config.yaml --run-date $(RUN_DATE) --output out

test: setup
	$(BIN)/python -m pytest -q

## build the wheel and sdist into dist/ (what --extra_package / the Dockerfile install)
dist: setup
	$(BIN)/python -m build --no-isolation --outdir dist .

## the built wheel, installed into a fresh venv outside the checkout, runs the batch (tools/package_check.sh)
package-check: setup
	PYTHON=$(PYTHON) RUN_DATE=$(RUN_DATE) bash tools/package_check.sh

bench: setup
	$(BIN)/python -m bench

## a sampling profile of the batch on the bench's 1M-key world: an SVG flame graph under bench/results/
profile: setup
	@W=$$($(BIN)/python -c "from bench._common import world; print(world(5000, 200)[0])"); \
	rm -rf bench/.cache/profile-out; mkdir -p bench/results; \
	$(BIN)/py-spy record --rate 20 --format flamegraph -o bench/results/profile-1m.svg -- \
	  $(BIN)/invrecon batch --config $$W/config.yaml --run-date $(RUN_DATE) --output bench/.cache/profile-out --quiet
	@echo "flame graph: bench/results/profile-1m.svg (open it in a browser)"

lint: setup
	$(BIN)/ruff check pipelines transforms schemas fixtures tests bench tools invrecon

## regenerate the committed world (deterministic: same bytes every time)
fixtures: setup
	$(BIN)/invrecon fixtures --out $(WORLD) --skus 40 --locations 6 --days 1 --seed 7

clean:
	rm -rf out .pytest_cache dist
