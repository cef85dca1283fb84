# Benchmarks (bench/README.md). The full run takes up to 20 minutes; the smoke run, seconds.
PYTHON ?= .venv/bin/python

.PHONY: bench bench-smoke

bench:
	$(PYTHON) -m bench

bench-smoke:
	$(PYTHON) -m bench --smoke
