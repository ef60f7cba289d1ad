# The README's two commands.
.PHONY: run stop test bench bench-service lint

run:  ## install everything into .venv and run the main job
	scripts/run.sh

test:  ## run the whole test suite
	scripts/test.sh

stop:  ## stop the service started by make run
	scripts/service.sh stop

bench:  ## benchmarks (not part of the test suite)
	.venv/bin/python bench/bench_generate.py && .venv/bin/python bench/bench_import.py

# The service benchmark drives hey: scripts/tools.sh installs it (apt-get, as root) when it is missing.
BENCH_SERVICE_ARGS ?= --small
bench-service:  ## /segment vs mlflow models serve vs echo ceilings, 1 vs 2 workers (BENCH_SERVICE_ARGS=--small)
	scripts/tools.sh && .venv/bin/python bench/bench_service.py $(BENCH_SERVICE_ARGS)

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
