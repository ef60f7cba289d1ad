# The README's two commands.
.PHONY: run stop test bench bench-service lint fuzz soak

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

# The nightly-sized contract run: the same tests on their own service, schemathesis with more cases.
FUZZ_EXAMPLES ?= 100
fuzz:  ## OpenAPI contract + schemathesis with FUZZ_EXAMPLES cases per operation (CI runs 8)
	SALESPULSE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  scripts/test.sh tests/test_api_contract.py -n 0

# Every Locust user type against the `make run` service for 30 minutes: failures and the server's RSS.
SOAK_ARGS ?=
soak:  ## soak the running service: requests, failures, RSS per process at start and end (SOAK_ARGS="--minutes 5")
	.venv/bin/python loadtest/soak.py $(SOAK_ARGS)

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
