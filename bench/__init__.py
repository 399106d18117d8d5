"""Benchmarks: each prints one JSON line with its figure, a baseline measured in the same run, and their ratio."""
