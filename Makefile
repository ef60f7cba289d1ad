# The README's two commands.
.PHONY: run stop test bench lint

run:  ## install everything into .venv and run the main job
	scripts/run.sh

test:  ## run the whole test suite
	scripts/test.sh

stop:  ## stop the service started by make run
	scripts/service.sh stop

bench:  ## benchmarks (not part of the test suite)
	.venv/bin/python bench/bench_generate.py && .venv/bin/python bench/bench_import.py

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
