"""Benchmarks of syncd against the machine's limits and the official SDK (`python -m bench`)."""
