"""SeqGAN on the shared loop: exact sampling, the rollout policy gradient, the discriminator, the
loop's mechanisms it needs (parts trained in turn with their own optimizers, a warm start from
another run) and short real runs on the oracle's data."""

import inspect
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REAL_DATA, compose, numpy_lstm_step
from flax import nnx
from scipy import stats

from experiments.seqgan import oracle_lstm, sequence
from experiments.seqgan.objectives import AdversarialSequence
from repro.data.transforms import for_data
from repro.optim import grouped

needs_oracle = pytest.mark.skipif(not (REAL_DATA / "seqgan" / oracle_lstm.ORACLE_FILE).exists(),
                                  reason="no SeqGAN oracle mirror")
VOCAB, LENGTH = 3, 3


def tiny_lstm(seed=0, std=1.0):
    key = jax.random.key(seed)
    return {n: std * jax.random.normal(jax.random.fold_in(key, i), s)
            for i, (n, s) in enumerate(sequence.lstm_shapes(VOCAB, 2, 2).items())}


def all_sequences():
    return jnp.asarray(list(itertools.product(range(VOCAB), repeat=LENGTH)), jnp.int32)


def test_sampling_matches_the_models_sequence_probabilities():
    p = tiny_lstm()
    seqs = all_sequences()
    probs = np.exp(np.asarray(sequence.token_log_probs(p, seqs).sum(-1), np.float64))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    n = 60_000
    drawn = np.asarray(jax.jit(lambda k: sequence.sample(p, k, n, LENGTH))(jax.random.key(1)))
    index = (drawn * VOCAB ** np.arange(LENGTH)[::-1]).sum(-1)
    counts = np.bincount(index, minlength=len(seqs))
    assert stats.chisquare(counts, probs / probs.sum() * n).pvalue > 1e-3
    # A sampler that ignored the model (uniform tokens) would fail the same test.
    assert stats.chisquare(np.full(len(seqs), n / len(seqs)), probs / probs.sum() * n).pvalue < 1e-6


def test_the_lstm_cell_and_its_teacher_forced_log_probs_by_hand():
    """The authors' cell (input, forget, output gates, then the candidate) in numpy, on shapes where
    vocab, embedding and hidden sizes all differ, from a start token that is not 0."""
    vocab, embed, hidden, start = 5, 3, 4, 2
    key = jax.random.key(11)
    p = {n: 0.8 * jax.random.normal(jax.random.fold_in(key, i), s)
         for i, (n, s) in enumerate(sequence.lstm_shapes(vocab, embed, hidden).items())}
    assert {n: s.shape for n, s in p.items()} == {
        "embedding": (5, 3), "Wi": (3, 4), "Ui": (4, 4), "bi": (4,), "Wf": (3, 4), "Uf": (4, 4), "bf": (4,),
        "Wog": (3, 4), "Uog": (4, 4), "bog": (4,), "Wc": (3, 4), "Uc": (4, 4), "bc": (4,), "Wo": (4, 5),
        "bo": (5,)}
    q = {n: np.asarray(v, np.float64) for n, v in p.items()}
    seqs = np.asarray(jax.random.randint(jax.random.key(12), (3, 6), 0, vocab))

    h, c = np.zeros((3, hidden)), np.zeros((3, hidden))
    token, expected, hs = np.full(3, start), [], []
    for t in range(seqs.shape[1]):
        h, c, log_probs = numpy_lstm_step(q, token, h, c)
        expected.append(log_probs[np.arange(3), seqs[:, t]])
        hs.append(h)
        token = seqs[:, t]
    got = sequence.token_log_probs(p, jnp.asarray(seqs, jnp.int32), start_token=start)
    np.testing.assert_allclose(got, np.stack(expected, 1), rtol=1e-5, atol=1e-6)
    states, _ = sequence.states(p, sequence.shifted_inputs(jnp.asarray(seqs, jnp.int32), start))
    np.testing.assert_allclose(states, np.stack(hs), rtol=1e-5, atol=1e-6)   # [T, B, hidden]
    np.testing.assert_array_equal(sequence.shifted_inputs(jnp.asarray(seqs), start)[:, 1:], seqs[:, :-1])
    assert (np.asarray(sequence.shifted_inputs(jnp.asarray(seqs), start))[:, 0] == start).all()


def test_the_generator_and_discriminator_are_initialized_as_the_authors():
    """Generator: every parameter N(0, 0.1^2), each from its own key. Discriminator: embedding
    U(-1, 1); convolution and output kernels truncated N(0, 0.1^2) (within 2 sd, sd 0.088 after
    the cut), their biases 0.1; highway biases 0. (The default sizes: the test below.)"""
    gen = sequence.LSTMGenerator(vocab=50, embed=4, hidden=6, length=7, rngs=nnx.Rngs(0))
    values = np.concatenate([np.asarray(v).ravel() for v in gen.weights().values()])
    assert 0.09 < values.std() < 0.11 and abs(values.mean()) < 0.01
    weights = [np.asarray(v) for v in gen.weights().values()]
    for a, b in itertools.combinations(weights, 2):
        assert a.shape != b.shape or not np.allclose(a, b)
    disc = sequence.CNNDiscriminator(vocab=300, embed=16, length=12, widths=(1, 3, 12),
                                     filters=(40, 50, 60), rngs=nnx.Rngs(0))
    embedding = np.asarray(disc.embedding[...])
    assert -1.0 <= embedding.min() < -0.99 and 0.99 < embedding.max() < 1.0
    for kernel in [c.kernel[...] for c in disc.convs] + [disc.out.kernel[...]]:
        kernel = np.asarray(kernel)
        assert np.abs(kernel).max() <= 0.2 and 0.08 < kernel.std() < 0.097 and abs(kernel.mean()) < 0.01
    for bias in [c.bias[...] for c in disc.convs] + [disc.out.bias[...]]:
        np.testing.assert_array_equal(bias, np.full(bias.shape, 0.1, np.float32))
    for layer in (disc.highway_h, disc.highway_t):
        np.testing.assert_array_equal(layer.bias[...], 0.0)


def test_draw_never_returns_a_token_of_zero_probability():
    logits = jnp.array([[0.0, -jnp.inf, 0.0, -jnp.inf]] * 4000)
    tokens = np.asarray(sequence.draw(jax.random.key(0), logits))
    assert set(np.unique(tokens)) == {0, 2}


def test_draw_takes_one_token_per_row_of_any_batch_shape_at_the_rows_probabilities():
    """Logits [2, 3000, 4]: the first rows put 0.7 / 0.3 on tokens 0 and 2, the others 0.2 / 0.8
    on 1 and 3, so a softmax, a cumulative sum or a scale taken along another axis shows."""
    probs = np.array([[0.7, 0.0, 0.3, 0.0], [0.0, 0.2, 0.0, 0.8]])
    with np.errstate(divide="ignore"):  # log 0 = -inf: a token that is never drawn
        logits = jnp.asarray(np.broadcast_to(np.log(probs)[:, None], (2, 3000, 4)), jnp.float32)
    tokens = np.asarray(sequence.draw(jax.random.key(4), logits))
    assert tokens.shape == (2, 3000) and tokens.dtype == np.int32
    for row, p in zip(tokens, probs, strict=True):
        counts = np.bincount(row, minlength=4)
        assert (counts[p == 0] == 0).all()
        assert stats.chisquare(counts[p > 0], 3000 * p[p > 0]).pvalue > 1e-3


@needs_oracle
def test_oracle_nll_of_its_own_samples_matches_its_predictive_entropy():
    """Both estimate the oracle's entropy rate: -log p of the drawn tokens, and the entropy of
    each predictive distribution along the same prefixes (a lower-variance estimate)."""
    p = oracle_lstm.load_oracle(REAL_DATA)
    seqs = oracle_lstm.sample(p, jax.random.key(3), 4000)
    nll = -np.asarray(sequence.token_log_probs(p, seqs).mean(-1), np.float64)

    @jax.jit
    def entropy_rate(chunk):  # 500 sequences at a time: all 4,000 at once hold 5 GB of logits
        hs, _ = sequence.states(p, sequence.shifted_inputs(chunk, 0))
        log_probs = jax.nn.log_softmax(jnp.einsum("tbh,hv->btv", hs, p["Wo"]) + p["bo"], -1)
        return -(jnp.exp(log_probs) * log_probs).sum(-1).mean(-1)

    entropy = np.concatenate([np.asarray(entropy_rate(c), np.float64) for c in jnp.split(seqs, 8)])
    difference = nll - entropy
    assert abs(difference.mean()) < 4 * difference.std() / np.sqrt(len(difference))
    assert 5.6 < entropy.mean() < 5.9


def test_rollout_policy_gradient_is_unbiased():
    """E[-grad sum_t log p(y_t) * reward_t] with Monte Carlo rollout rewards equals the exact
    gradient of E[R(y)], by enumeration of all 27 sequences, for a fixed random R."""
    p = tiny_lstm(seed=2, std=0.7)
    seqs = all_sequences()
    table = jax.random.uniform(jax.random.key(5), (len(seqs),))

    def score(tokens):
        return table[(tokens * VOCAB ** jnp.arange(LENGTH)[::-1]).sum(-1)]

    exact = jax.grad(lambda q: (jnp.exp(sequence.token_log_probs(q, seqs).sum(-1)) * table).sum())(p)

    @jax.jit
    def estimate(key):
        k1, k2 = jax.random.split(key)
        fake = sequence.sample(p, k1, 2048, LENGTH)
        rewards = sequence.rollout_rewards(p, fake, k2, score, num_rollouts=2)
        return jax.grad(lambda q: (sequence.token_log_probs(q, fake) * rewards).sum(-1).mean())(p)

    batches = [estimate(k) for k in jax.random.split(jax.random.key(7), 40)]
    for name in exact:
        values = np.stack([np.asarray(b[name]) for b in batches])
        se = values.std(0, ddof=1) / np.sqrt(len(values))
        z = np.abs(values.mean(0) - np.asarray(exact[name])) / np.maximum(se, 1e-8)
        assert z.max() < 4.5, (name, z.max())
    # The reward of the whole sequence is its score; a prefix's is a mean of scores.
    fake = sequence.sample(p, jax.random.key(9), 16, LENGTH)
    rewards = sequence.rollout_rewards(p, fake, jax.random.key(10), score, num_rollouts=3)
    np.testing.assert_allclose(rewards[:, -1], score(fake), rtol=1e-6)
    assert rewards.shape == (16, LENGTH) and float(rewards.min()) >= 0 and float(rewards.max()) <= 1


def test_a_rollouts_mean_score_is_the_expected_score_given_its_prefix():
    """Each prefix's reward estimates E[score(y) | y starts with the prefix] under the model, which
    enumeration of all 27 sequences gives exactly. An LSTM with memory: a completion that starts
    from the wrong state (one token early or late) draws from another conditional."""
    p = tiny_lstm(seed=4, std=1.5)
    seqs = all_sequences()
    table = jax.random.uniform(jax.random.key(6), (len(seqs),))
    weights = VOCAB ** jnp.arange(LENGTH)[::-1]

    def score(tokens):
        return table[(tokens * weights).sum(-1)]

    probs = np.exp(np.asarray(sequence.token_log_probs(p, seqs).sum(-1), np.float64))
    values, tokens = np.asarray(table, np.float64), np.asarray(seqs)
    rollouts = 4000
    rewards = np.asarray(jax.jit(lambda k: sequence.rollout_rewards(p, seqs, k, score, rollouts))(
        jax.random.key(8)))
    for t in range(1, LENGTH):
        for i in range(len(seqs)):
            same = (tokens[:, :t] == tokens[i, :t]).all(1)
            w = probs[same] / probs[same].sum()
            mean = (w * values[same]).sum()
            se = np.sqrt((w * (values[same] - mean) ** 2).sum() / rollouts)
            assert abs(rewards[i, t - 1] - mean) < 5 * se + 1e-6, (i, t, rewards[i, t - 1], mean, se)
    np.testing.assert_allclose(rewards[:, -1], values, rtol=1e-6)


def test_a_rollout_keeps_exactly_the_first_t_tokens_and_completes_after_them():
    # A generator that draws, with certainty, the token after its input in the cycle 0 -> 1 -> 2 -> 0
    # (gates open, no memory, each token's embedding a point of a circle and the output weights
    # aimed at the next one's) and a score that tells every sequence apart: the reward at t < T is
    # the score of the first t tokens continued by the cycle from the t-th, at T the sequence's own.
    length = 6
    p = {k: jnp.zeros_like(v) for k, v in tiny_lstm().items()}
    p.update(bi=jnp.full(2, 20.0), bf=jnp.full(2, -20.0), bog=jnp.full(2, 20.0), Wc=jnp.eye(2))
    angles = 2 * np.pi * np.arange(VOCAB) / VOCAB
    p["embedding"] = jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], 1), jnp.float32)
    h = np.tanh(np.tanh(np.asarray(p["embedding"])))  # the output after each input token
    p["Wo"] = jnp.asarray(50.0 * np.roll(h / np.linalg.norm(h, axis=1, keepdims=True), 1, axis=0).T)
    seqs = jax.random.randint(jax.random.key(3), (4, length), 0, VOCAB)
    weights = VOCAB ** jnp.arange(length)[::-1]

    def score(tokens):
        return (tokens * weights).sum(-1).astype(jnp.float32)

    rewards = np.asarray(sequence.rollout_rewards(p, seqs, jax.random.key(4), score, num_rollouts=2))
    positions = np.arange(length)
    completed = [jnp.where(positions < t, seqs, (seqs[:, t - 1:t] + positions - t + 1) % VOCAB)
                 for t in range(1, length + 1)]
    expected = np.stack([np.asarray(score(c)) for c in completed], 1)
    np.testing.assert_array_equal(rewards, expected)


def test_scheduled_sampling_with_full_teacher_forcing_is_teacher_forcing():
    p = tiny_lstm()
    seqs = sequence.sample(p, jax.random.key(0), 64, 6)
    forced = sequence.token_log_probs(p, seqs)
    np.testing.assert_allclose(sequence.scheduled_log_probs(p, seqs, jax.random.key(1), 1.0), forced,
                               rtol=1e-5, atol=1e-6)
    free = sequence.scheduled_log_probs(p, seqs, jax.random.key(1), 0.0)
    np.testing.assert_allclose(free[:, 0], forced[:, 0], rtol=1e-6)  # the first input is the start token
    assert not np.allclose(free[:, 1:], forced[:, 1:])


def test_discriminator_window_matmul_is_a_valid_1d_convolution():
    disc = sequence.CNNDiscriminator(vocab=50, embed=8, length=12, widths=(1, 3, 12), filters=(4, 5, 6),
                                     rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (5, 12, 8))
    for conv in disc.convs:
        expected = jax.lax.conv_general_dilated(x, conv.kernel[...], (1,), "VALID",
                                                dimension_numbers=("NWC", "WIO", "NWC")) + conv.bias[...]
        np.testing.assert_allclose(conv(x), expected, rtol=1e-4, atol=1e-5)
    tokens = jax.random.randint(jax.random.key(2), (5, 12), 0, 50)
    assert disc(tokens).shape == (5, 2)
    assert not np.allclose(disc(tokens, dropout_key=jax.random.key(3)), disc(tokens))  # dropout on
    with pytest.raises(ValueError, match="at most the sequence length"):
        sequence.CNNDiscriminator(vocab=50, length=5, widths=(6,), filters=(2,), rngs=nnx.Rngs(0))


def test_the_discriminators_highway_and_probability_of_real_by_hand():
    disc = sequence.CNNDiscriminator(vocab=50, embed=8, length=12, widths=(1, 3, 12), filters=(4, 5, 6),
                                     rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(2), (5, 12), 0, 50)
    x = disc.embedding[...][tokens]
    pooled = np.concatenate([np.asarray(jax.nn.relu(conv(x))).max(1) for conv in disc.convs], -1)  # [5, 15]

    def linear(layer, v):
        return v @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])

    gate = 1 / (1 + np.exp(-linear(disc.highway_t, pooled)))
    h = gate * np.maximum(linear(disc.highway_h, pooled), 0) + (1 - gate) * pooled
    logits = linear(disc.out, h)
    np.testing.assert_allclose(disc(tokens), logits, rtol=1e-4, atol=1e-5)
    real = np.exp(logits[:, 1]) / np.exp(logits).sum(1)  # per sequence: column 1 of its own softmax
    np.testing.assert_allclose(disc.prob_real(tokens), real, rtol=1e-4)
    # training: inverted dropout keeps each unit with probability 0.75 and scales it by 1 / 0.75
    keep = np.asarray(jax.random.bernoulli(jax.random.key(3), 0.75, h.shape))
    np.testing.assert_allclose(disc(tokens, dropout_key=jax.random.key(3)),
                               linear(disc.out, np.where(keep, h / 0.75, 0.0)), rtol=1e-4, atol=1e-5)
    # the authors' regularizer: tf.nn.l2_loss of the output layer, half the sum of squares
    squares = (np.asarray(disc.out.kernel[...]) ** 2).sum() + (np.asarray(disc.out.bias[...]) ** 2).sum()
    np.testing.assert_allclose(disc.l2(), 0.5 * squares, rtol=1e-6)


def test_the_generator_and_discriminator_defaults_are_the_authors():
    gen = sequence.LSTMGenerator(vocab=50, embed=4, hidden=6, length=7, rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (3, 7), 0, 50)
    np.testing.assert_array_equal(gen(tokens), sequence.token_log_probs(gen.weights(), tokens, 0))  # start: 0
    defaults = inspect.signature(sequence.LSTMGenerator.__init__).parameters
    assert {k: v.default for k, v in defaults.items() if k not in ("self", "rngs")} == {
        "vocab": 5000, "embed": 32, "hidden": 32, "length": 20, "start_token": 0, "init_std": 0.1}
    defaults = inspect.signature(sequence.CNNDiscriminator.__init__).parameters
    assert {k: v.default for k, v in defaults.items() if k not in ("self", "rngs")} == {
        "vocab": 5000, "embed": 64, "length": 20, "widths": (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20),
        "filters": (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160), "dropout": 0.25}


def test_grouped_optimizer_updates_only_the_active_part():
    params = {"generator": {"w": jnp.ones(3)}, "discriminator": {"w": jnp.ones(2), "b": jnp.ones(1)}}
    grads = jax.tree.map(jnp.ones_like, params)
    opt = grouped({"generator": optax.adam(0.1), "discriminator": optax.adam(0.2)})
    state = opt.init(params)
    for active in ({"generator": True, "discriminator": False},):
        update = jax.jit(lambda g, s, p, a=active: opt.update(g, s, p, active=a))
        updates, new_state = update(grads, state, params)
        np.testing.assert_allclose(updates["generator"]["w"], -0.1, rtol=1e-4)
        assert all(float(jnp.abs(u).max()) == 0 for u in jax.tree.leaves(updates["discriminator"]))
        for before, after in zip(jax.tree.leaves(state["discriminator"]),
                                 jax.tree.leaves(new_state["discriminator"]), strict=True):
            np.testing.assert_array_equal(before, after)  # Adam's count and moments untouched
        assert int(new_state["generator"][0].count) == 1
    with pytest.raises(ValueError, match=r"model parts \['extra'\] have no optimizer"):
        opt.init({**params, "extra": jnp.ones(1)})


def test_adversarial_phases():
    objective = AdversarialSequence(d_pretrain_steps=3, d_steps=2)
    assert [objective.phase(s) for s in range(9)] == [
        ("discriminator", 3), ("discriminator", 2), ("discriminator", 1), ("generator", 1),
        ("discriminator", 2), ("discriminator", 1), ("generator", 1), ("discriminator", 2),
        ("discriminator", 1)]


def test_online_oracle_is_checked_before_it_is_cached(tmp_path, monkeypatch):
    import io

    from experiments.seqgan import data as seqgan_oracle
    from repro.errors import DataError

    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: io.BytesIO(b"not it"))
    with pytest.raises(DataError, match="nothing was saved"):
        seqgan_oracle.read_online(str(tmp_path))
    assert not (tmp_path / "seqgan" / oracle_lstm.ORACLE_FILE).exists()


def test_transforms_pass_tokens_through():
    tokens = jnp.array([[4999, 0, 7]], jnp.int32)
    out = for_data(compose(["experiment=seqgan"]).data, None)({"tokens": tokens}, key=jax.random.key(0),
                                                               train=True)
    assert set(out) == {"tokens"} and out["tokens"].dtype == jnp.int32 and (out["tokens"] == tokens).all()


# ----- real runs on the oracle's data -----------------------------------------------------------
def quick(tmp_path, *extra):
    return [f"data.dir={REAL_DATA}", "logger.mode=disabled", "progress=false",
            f"paths.results={tmp_path / 'results'}", f"paths.checkpoints={tmp_path / 'checkpoints'}",
            *extra]


MLE_SHORT = ["probes.0.samples=2000", "train.eval_batch_size=2000", "train.steps=60", "train.chunk_steps=30",
             "train.eval_every=30", "train.checkpoint_every=0"]
FROM_MLE_SHORT = "init_from=[" + ",".join(f"'{o}'" for o in MLE_SHORT) + "]"
TINY_GAN = ["model=seqgan", "objective=adversarial_sequence", "tag=seqgan",
            "optim.groups=[{part:generator},{part:discriminator,lr:0.0001,grad_clip:null}]",
            FROM_MLE_SHORT, "init_part=generator",
            "probes.0.samples=2000", "train.eval_batch_size=2000",
            "model.discriminator.widths=[1,2,20]", "model.discriminator.filters=[8,8,8]",
            "objective.rollouts=2", "objective.g_batch=16", "objective.d_pretrain_steps=4",
            "objective.d_steps=3", "train.batch_size=16", "train.steps=12", "train.chunk_steps=4",
            "train.eval_every=4", "train.checkpoint_every=0"]

TINY_PG_BLEU = ["objective=pg_bleu", "tag=pg_bleu", FROM_MLE_SHORT, "probes.0.samples=2000",
                "train.eval_batch_size=2000", "objective.rollouts=2",
                "objective.g_batch=16", "train.steps=4", "train.chunk_steps=2", "train.eval_every=2",
                "train.checkpoint_every=0"]


@needs_oracle
def test_oracle_data_set():
    from repro.data import load_dataset

    data = load_dataset("seqgan_oracle", str(REAL_DATA))
    train = data.split("train")
    assert set(train) == {"tokens"}  # no stand-in labels
    assert train["tokens"].shape == (10_000, 20) and train["tokens"].dtype == np.int32
    assert data.split("test")["tokens"].shape == (10_000, 20)
    assert not np.array_equal(train["tokens"][:100], data.split("test")["tokens"][:100])
    assert data.partial is None and len(data.identity()["sha256"]) == 3  # the oracle and both draws


@needs_oracle
def test_short_mle_then_seqgan_runs(tmp_path):
    from repro.run import run

    with pytest.raises(FileNotFoundError, match="Train that first: python -m repro experiment=seqgan"):
        run(compose(["experiment=seqgan", *quick(tmp_path, *TINY_GAN)]))
    mle = run(compose(["experiment=seqgan", *quick(tmp_path, *MLE_SHORT)]))
    nll = [r["probe/oracle_nll"] for r in mle["history"]]
    assert nll[-1] < nll[0] - 0.5  # 11.4 untrained
    assert all(r["probe/distinct"] == 1.0 for r in mle["history"])  # 2,000 samples, none repeated
    gan = run(compose(["experiment=seqgan", *quick(tmp_path, *TINY_GAN)]))
    assert gan["init_from"]["run"] == mle["name"] and gan["init_from"]["part"] == "generator"
    history = gan["history"]
    # Starts from the MLE run's generator; the discriminator's pre-training leaves it alone.
    assert history[0]["probe/oracle_nll"] == pytest.approx(nll[-1], abs=1e-5)
    assert history[1]["probe/oracle_nll"] == pytest.approx(nll[-1], abs=1e-5)
    assert "train/d_accuracy" in history[1] and "train/reward" not in history[1]
    assert any("train/reward" in r for r in history[2:])
    assert history[-1]["probe/oracle_nll"] != history[1]["probe/oracle_nll"]
    again = run(compose(["experiment=seqgan", *quick(tmp_path, *TINY_GAN), "results.if_exists=overwrite",
                         f"paths.checkpoints={tmp_path / 'checkpoints2'}"]))
    assert json.dumps(again["history"]) == json.dumps(history)  # deterministic for a fixed seed
    # PG-BLEU: the whole generator starts from the MLE run; every step is a BLEU-rewarded one.
    pg = run(compose(["experiment=seqgan", *quick(tmp_path, *TINY_PG_BLEU)]))
    assert pg["init_from"]["run"] == mle["name"] and pg["init_from"]["part"] is None
    assert pg["history"][0]["probe/oracle_nll"] == pytest.approx(nll[-1], abs=1e-5)
    assert all(0.0 < r["train/final_reward"] < 1.0 for r in pg["history"][1:])
    assert pg["history"][-1]["probe/oracle_nll"] != pg["history"][0]["probe/oracle_nll"]


def test_distinct_fraction_counts_repeated_sequences():
    from experiments.seqgan.probes import distinct_fraction

    tokens = jnp.array([[1, 2, 3], [1, 2, 3], [3, 2, 1], [1, 2, 4], [3, 2, 1], [0, 0, 0]])
    assert float(jax.jit(distinct_fraction)(tokens)) == pytest.approx(4 / 6)
    assert float(distinct_fraction(jnp.arange(12).reshape(4, 3))) == 1.0


def test_pg_bleu_with_the_authors_settings_keeps_a_seeded_share_of_references_and_unsmoothed_bleu():
    """The authors' pg_bleu.py (commit 4f1b717): ~40% of the real sequences as references (a fixed
    draw), BLEU-3 without smoothing: a sample that misses an order entirely scores 0, not NaN."""
    from experiments.seqgan.objectives import PolicyGradientBLEU

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 50, size=(1000, 8)).astype(np.int32)
    pg = PolicyGradientBLEU(50, max_n=3, smoothing=0.0, rollouts=1, reference_fraction=0.4,
                            train_split={"tokens": tokens})
    again = PolicyGradientBLEU(50, max_n=3, smoothing=0.0, reference_fraction=0.4,
                               train_split={"tokens": tokens})
    other = PolicyGradientBLEU(50, max_n=3, smoothing=0.0, reference_fraction=0.4, reference_seed=1,
                               train_split={"tokens": tokens})
    assert 340 < pg.references < 460 and pg.references == again.references
    kept = np.random.default_rng(0).random(1000) < 0.4
    reward = pg.reward(jnp.asarray(tokens[:50]))
    np.testing.assert_allclose(reward[kept[:50]], 1.0, rtol=1e-6)   # a reference scores 1
    unseen = jnp.full((2, 8), 0, jnp.int32)                          # token 0 never occurs in the data
    assert np.array_equal(pg.reward(unseen), [0.0, 0.0])
    other_reward = other.reward(jnp.asarray(tokens[:50]))
    assert other.references != pg.references or not np.array_equal(other_reward, reward)
    with pytest.raises(ValueError, match="reference_fraction=0"):
        PolicyGradientBLEU(50, reference_fraction=0.0, train_split={"tokens": tokens})
