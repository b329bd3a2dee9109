"""Benchmarks of the CDP against a real database (see bench/README.md)."""
