"""repro: reproductions of deep-learning papers on one shared JAX training loop."""
