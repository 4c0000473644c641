"""Latency benchmarks for agentos_mw against the alternatives (``python -m benchmarks``)."""
