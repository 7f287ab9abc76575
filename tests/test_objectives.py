"""The shared objectives' values by hand: per-example metrics on fixed logits, and the training
loss as the batch mean plus the model's own penalty."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from repro.objectives import Classification, mean_loss_plus_penalty

# Three examples, four classes (every dimension differs): rows are examples, columns classes.
LOGITS = np.array([[2.0, 0.5, -1.0, 0.0],
                   [0.0, 3.0, 1.0, -2.0],
                   [1.0, 1.0, 4.0, 0.5]], np.float32)
LABELS = np.array([0, 2, 2], np.int32)  # right, wrong (argmax 1), right


class FixedLogits:
    def __init__(self, logits, penalty=None):
        self.logits, self._penalty = jnp.asarray(logits), penalty

    def __call__(self, images, *, train, rngs=None):
        assert images.shape[0] == self.logits.shape[0]
        return self.logits


class PenalizedLogits(FixedLogits):
    def penalty(self):
        return jnp.float32(self._penalty)


def by_hand_xent(logits, labels):
    return np.array([math.log(np.exp(row).sum()) - row[k] for row, k in zip(logits, labels, strict=True)])


def test_classification_reports_cross_entropy_accuracy_and_error_percent_per_example():
    batch = {"image": np.zeros((3, 5, 2, 1), np.float32), "label": LABELS}
    out = Classification().per_example(FixedLogits(LOGITS), batch, train=False)
    np.testing.assert_allclose(out["loss"], by_hand_xent(LOGITS, LABELS), rtol=1e-6)
    np.testing.assert_array_equal(out["accuracy"], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(out["error_percent"], [0.0, 100.0, 0.0])
    assert out["loss"].shape == (3,)


def test_the_training_loss_is_the_batch_mean_plus_the_models_penalty_and_reports_it():
    batch = {"image": np.zeros((3, 5, 2, 1), np.float32), "label": LABELS}
    xent = by_hand_xent(LOGITS, LABELS)
    loss, metrics = Classification().train_loss(FixedLogits(LOGITS), batch)
    assert float(loss) == pytest.approx(xent.mean(), rel=1e-6)
    assert "penalty" not in metrics and float(metrics["accuracy"]) == pytest.approx(2 / 3)
    assert float(metrics["error_percent"]) == pytest.approx(100 / 3)

    loss, metrics = Classification().train_loss(PenalizedLogits(LOGITS, penalty=0.75), batch)
    assert float(loss) == pytest.approx(xent.mean() + 0.75, rel=1e-6)
    assert float(metrics["penalty"]) == 0.75
    assert float(metrics["loss"]) == pytest.approx(xent.mean(), rel=1e-6)  # the data part alone

    per_example = {"loss": jnp.array([1.0, 2.0, 6.0]), "x": jnp.array([0.0, 3.0, 3.0])}
    loss, metrics = mean_loss_plus_penalty(None, per_example)
    assert float(loss) == 3.0 and float(metrics["x"]) == 2.0


@pytest.mark.parametrize("batch", [1, 2])
def test_bernoulli_bits_per_dim_divide_by_one_images_pixels_also_for_a_batch_of_one(batch):
    from repro.objectives import BernoulliLikelihood

    images = jnp.asarray(np.random.default_rng(batch).integers(0, 2, (batch, 3, 5, 1)), jnp.float32)
    out = BernoulliLikelihood().per_example(FixedLogits(jnp.zeros((batch, 3, 5, 1))), {"image": images},
                                            train=False)
    np.testing.assert_allclose(out["nll_nats"], 15 * math.log(2.0), rtol=1e-6)  # 15 pixels at p = 1/2
    np.testing.assert_allclose(out["bits_per_dim"], 1.0, rtol=1e-6)


class TrainDoubles(FixedLogits):
    """Logits doubled in training (as dropout or batch statistics would change them)."""

    def __call__(self, images, *, train, rngs=None):
        return self.logits * (2.0 if train else 1.0)


def test_the_training_loss_runs_the_model_in_training_mode_and_evaluation_does_not():
    from repro.objectives import BernoulliLikelihood

    batch = {"image": np.zeros((3, 5, 2, 1), np.float32), "label": LABELS}
    loss, _ = Classification().train_loss(TrainDoubles(LOGITS), batch)
    assert float(loss) == pytest.approx(by_hand_xent(2 * LOGITS, LABELS).mean(), rel=1e-6)
    out = Classification().per_example(TrainDoubles(LOGITS), batch, train=False)
    np.testing.assert_allclose(out["loss"], by_hand_xent(LOGITS, LABELS), rtol=1e-6)

    images = jnp.ones((2, 3, 5, 1))
    loss, _ = BernoulliLikelihood().train_loss(TrainDoubles(jnp.ones((2, 3, 5, 1))), {"image": images})
    assert float(loss) == pytest.approx(15 * math.log1p(math.exp(-2.0)), rel=1e-5)  # logit 2, not 1
