"""Benchmarks of the ops against their baselines (STYLE §9): ``python -m weightmem_fast.bench --help``."""
