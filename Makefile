# railpulse — the two commands: `make demo` (the main job) and `make test` (the tests).
SHELL := /bin/bash
# uv as installed by scripts/bootstrap.sh (`python3 -m uv` works even before the PATH knows it).
UV = $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: schemas help setup test lint typecheck unit demo stack-up stack-down stack-status clean images test-containers compose-up compose-down

help:  ## list the targets
	@grep -hE '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

setup:  ## install what is missing (Debian packages, uv, the locked Python environment)
	@bash scripts/bootstrap.sh

lint: setup  ## ruff over the whole tree
	$(UV) run ruff check .
	$(UV) run ruff format --check shared

typecheck: setup  ## mypy --strict over the common library, the services and the tools
	$(UV) run mypy --strict shared/src devstack/src cli/src services/detector/src services/archiver/src services/ingest/src services/notifier/src services/console/src deploy/src edge/src

test: setup lint typecheck images  ## everything: lint, types, images, unit, contract, stack, containers, compose, end-to-end and fault tests
	$(UV) run pytest $(PYTEST_ARGS)

unit: setup  ## only the tests that need no running stack and no Docker
	$(UV) run pytest -m "not stack and not containers" $(PYTEST_ARGS)

images:  ## build every image (installs and starts Docker if needed; see scripts/images.sh)
	bash scripts/images.sh

test-containers: setup images  ## only the images: each run as its task definition says, compose.yaml up end to end
	$(UV) run pytest -m containers $(PYTEST_ARGS)

compose-up:  ## the local stack and the four services in containers (scripts/compose.sh; compose-down stops it)
	bash scripts/compose.sh up -d

compose-down:  ## stop the containers and drop their state
	bash scripts/compose.sh down -v

demo: setup  ## the main job: local stack, the four services and a simulated fleet, end to end
	$(UV) run railpulse demo

stack-up: setup  ## start the local stack (idempotent)
	$(UV) run railpulse stack up

stack-down: setup  ## stop the local stack
	$(UV) run railpulse stack down

stack-status: setup  ## what runs where
	$(UV) run railpulse stack status

bench-%: setup  ## a benchmark: make bench-<name> BENCH_ARGS="..."
	$(UV) run python -m bench.$(subst -,_,$*) $(BENCH_ARGS)

clean:  ## remove local state (stack data, caches)
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
schemas:  ## write the contracts' JSON Schemas (refuses breaking changes)
	$(UV) run python -m railpulse_shared.schema
