"""flax.nnx models. Every model's __call__ takes (x, train: bool, rngs: nnx.Rngs | None)."""
