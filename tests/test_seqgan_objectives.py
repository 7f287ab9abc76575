"""SeqGAN's objectives by value (experiments/seqgan/objectives.py): the scheduled-sampling decay,
the REINFORCE loss with rollout rewards, the discriminator's step with its labels and regularizer.
Vocabulary, embedding, hidden size, length and batch all differ, so no axis can stand in for another."""

import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments.seqgan import sequence
from experiments.seqgan.objectives import AdversarialSequence, SequenceNLL, policy_gradient_loss

VOCAB, LENGTH, START = 8, 5, 3
MARK = 7  # real sequences are all MARK: a random generator draws one with chance ~8^-5


def generator(seed=0):
    return sequence.LSTMGenerator(vocab=VOCAB, embed=4, hidden=6, length=LENGTH, start_token=START,
                                  init_std=0.5, rngs=nnx.Rngs(seed))


def place_value(tokens):  # a score that tells every sequence apart, and weighs later tokens more
    return ((tokens * VOCAB ** jnp.arange(LENGTH)).sum(-1) / VOCAB ** LENGTH).astype(jnp.float32)


class MarkDiscriminator:
    """Logits (fake, real) = (-3, 3) for an all-MARK sequence, (1, -1) otherwise; l2() = 2.5."""

    def __init__(self):
        self.keys = []

    def __call__(self, tokens, dropout_key=None):
        self.keys.append(dropout_key)
        real = (tokens == MARK).all(-1)
        return jnp.stack([jnp.where(real, -3.0, 1.0), jnp.where(real, 3.0, -1.0)], -1)

    def l2(self):
        return jnp.float32(2.5)

    def prob_real(self, tokens):
        return jax.nn.softmax(self(tokens), -1)[:, 1]


def test_scheduled_sampling_decays_as_k_over_k_plus_exp_epoch_over_k():
    objective = SequenceNLL(scheduled_sampling_k=4.0, steps_per_epoch=50)
    for step, epoch in ((0, 0.0), (50, 1.0), (175, 3.5), (1000, 20.0)):
        expected = 4.0 / (4.0 + math.exp(epoch / 4.0))
        assert float(objective.teacher_forcing(jnp.float32(step))) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        SequenceNLL(scheduled_sampling_k=4.0)

    gen = generator()
    tokens = jax.random.randint(jax.random.key(1), (3, LENGTH), 0, VOCAB)
    key = jax.random.key(2)
    loss, metrics = objective.train_loss(gen, {"tokens": tokens}, rngs=nnx.Rngs(dropout=key), step=175)
    eps = 4.0 / (4.0 + math.exp(3.5 / 4.0))
    by_hand = -sequence.scheduled_log_probs(gen.weights(), tokens, nnx.Rngs(dropout=key).dropout(), eps,
                                            START).mean()
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(metrics["teacher_forcing"]) == pytest.approx(eps, rel=1e-6)
    # Without the decay it is the teacher-forced NLL per token, averaged over the batch.
    loss, _ = SequenceNLL().train_loss(gen, {"tokens": tokens}, rngs=nnx.Rngs(dropout=key))
    forced = -sequence.token_log_probs(gen.weights(), tokens, START).mean()
    assert float(loss) == pytest.approx(float(forced), rel=1e-6)


def test_the_policy_gradient_loss_is_minus_the_sum_of_log_probs_times_frozen_rollout_rewards():
    gen, key = generator(), jax.random.key(5)
    num, rollouts = 6, 3

    def loss_of(weights):
        model = SimpleNamespace(length=LENGTH, start_token=START, weights=lambda: weights)
        return policy_gradient_loss(model, place_value, key, num, rollouts)

    weights = gen.weights()
    (loss, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(weights)
    key_sample, key_rollout = jax.random.split(key)
    fake = sequence.sample(weights, key_sample, num, LENGTH, START)
    rewards = sequence.rollout_rewards(weights, fake, key_rollout, place_value, rollouts, START)
    assert fake.shape == (num, LENGTH) and rewards.shape == (num, LENGTH)
    assert len(np.unique(np.asarray(rewards))) > 2  # rewards really differ by position and sample

    def surrogate(w):  # the rewards held fixed: the gradient reaches the weights through log p alone
        return -(sequence.token_log_probs(w, fake, START) * rewards).sum()

    assert float(loss) == pytest.approx(float(surrogate(weights)), rel=1e-5)
    assert float(metrics["reward"]) == pytest.approx(float(rewards.mean()), rel=1e-6)
    assert float(metrics["final_reward"]) == pytest.approx(float(place_value(fake).mean()), rel=1e-6)
    expected = jax.grad(surrogate)(weights)
    for name in weights:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-4, atol=1e-6)


def test_the_discriminator_step_labels_real_one_and_fake_zero_and_adds_the_l2_term():
    objective = AdversarialSequence(d_pretrain_steps=2, d_steps=1, l2=0.2)
    model = SimpleNamespace(generator=generator(), discriminator=MarkDiscriminator())
    real = jnp.full((4, LENGTH), MARK, jnp.int32)
    loss, metrics = objective.train_loss(model, {"tokens": real}, rngs=nnx.Rngs(dropout=jax.random.key(0)),
                                         phase="discriminator")
    # Every sequence told apart: the 4 real ones with a margin of 6, as many fakes with a margin of 2.
    xent = (math.log1p(math.exp(-6.0)) + math.log1p(math.exp(-2.0))) / 2
    assert float(metrics["d_accuracy"]) == 1.0
    assert float(metrics["d_xent"]) == pytest.approx(xent, rel=1e-4)  # float32's log1p(e^-6)
    assert float(loss) == pytest.approx(xent + 0.2 * 2.5, rel=1e-5)
    assert model.discriminator.keys[-1] is not None  # the discriminator trains with dropout


def test_the_generator_step_rewards_with_the_discriminators_probability_of_real():
    objective = AdversarialSequence(d_pretrain_steps=2, d_steps=1, g_batch=5, rollouts=2)
    gen, disc = generator(), MarkDiscriminator()
    batch = {"tokens": jnp.full((4, LENGTH), MARK, jnp.int32)}
    key = jax.random.key(9)
    loss, metrics = objective.train_loss(SimpleNamespace(generator=gen, discriminator=disc), batch,
                                         rngs=nnx.Rngs(dropout=key), phase="generator")
    expected, by_hand = policy_gradient_loss(gen, disc.prob_real, nnx.Rngs(dropout=key).dropout(), 5, 2)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(metrics["reward"]) == pytest.approx(float(by_hand["reward"]), rel=1e-6)
    assert 0 < float(metrics["reward"]) < 1


def test_phases_count_cycles_from_the_end_of_pre_training_when_it_is_not_a_whole_number_of_cycles():
    objective = AdversarialSequence(d_pretrain_steps=4, d_steps=2)  # 4 is not a multiple of 3
    assert [objective.phase(s) for s in range(10)] == [
        ("discriminator", 4), ("discriminator", 3), ("discriminator", 2), ("discriminator", 1),
        ("generator", 1), ("discriminator", 2), ("discriminator", 1),
        ("generator", 1), ("discriminator", 2), ("discriminator", 1)]


def test_pg_bleu_defaults_are_the_papers_every_reference_bleu_4_smoothed():
    from experiments.seqgan import bleu
    from experiments.seqgan.objectives import PolicyGradientBLEU

    tokens = np.random.default_rng(3).integers(0, VOCAB, size=(30, 6)).astype(np.int32)
    pg = PolicyGradientBLEU(VOCAB, train_split={"tokens": tokens})
    assert pg.references == 30 and (pg.g_batch, pg.rollouts, pg.smoothing) == (64, 16, 0.1)
    with pytest.raises(ValueError, match="reference_fraction=1.5"):
        PolicyGradientBLEU(VOCAB, reference_fraction=1.5, train_split={"tokens": tokens})
    candidates = jnp.asarray(np.random.default_rng(4).integers(0, VOCAB, size=(12, 6)), jnp.int32)
    expected = bleu.sentence_bleu(bleu.ngram_table(tokens, VOCAB, 4), candidates, VOCAB, 0.1)
    np.testing.assert_allclose(pg.reward(candidates), expected, rtol=1e-6)
    assert not np.allclose(expected, bleu.sentence_bleu(bleu.ngram_table(tokens, VOCAB, 5), candidates,
                                                        VOCAB, 0.1))


class HalvedInTraining:
    """Log-probabilities halved in training (as dropout would change them)."""

    def __call__(self, tokens, train=False, rngs=None):
        return -jnp.ones(tokens.shape) * (0.5 if train else 1.0)


def test_the_nll_trains_the_model_in_training_mode_and_the_gan_defaults_are_the_authors():
    tokens = jnp.zeros((3, LENGTH), jnp.int32)
    loss, _ = SequenceNLL().train_loss(HalvedInTraining(), {"tokens": tokens}, rngs=nnx.Rngs(0))
    assert float(loss) == 0.5
    evaluated = SequenceNLL().per_example(HalvedInTraining(), {"tokens": tokens}, train=False)
    assert float(evaluated["nll"][0]) == 1.0
    objective = AdversarialSequence(d_pretrain_steps=1, d_steps=1)
    assert (objective.g_batch, objective.rollouts, objective.l2) == (64, 16, 0.2)
