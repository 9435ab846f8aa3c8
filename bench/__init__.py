"""Benchmarks; see bench/load.py."""
