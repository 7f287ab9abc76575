"""Benchmarks (`make bench`): the suite's loop against bare hand-written JAX loops."""
