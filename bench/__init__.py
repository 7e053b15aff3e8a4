"""Benchmarks of gobuild: `python bench/run.py [--quick] [--million]` (see bench/run.py)."""
