# Benchmarks (bench/README.md). The full run takes about 35 minutes; the smoke run, seconds.
PYTHON ?= .venv/bin/python

.PHONY: bench bench-smoke chaos

bench:
	$(PYTHON) -m bench

bench-smoke:
	$(PYTHON) -m bench --smoke

# Chaos runs (docs/reliability.md): the daemon and the emulator as subprocesses under faults and
# kill -9, then the invariant checker. A failing run prints its seed: make chaos SEEDS=<seed>.
CHAOS_RUNS ?= 5
CHAOS_SECONDS ?= 180
SEEDS ?=

chaos:
	$(PYTHON) -m tests.chaos --duration $(CHAOS_SECONDS) $(if $(SEEDS),$(foreach s,$(SEEDS),--seed $(s)),--runs $(CHAOS_RUNS))
