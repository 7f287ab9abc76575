"""Token-sequence models of the SeqGAN family (Yu et al. 2017): the LSTM language model of the
oracle and of the generator (one cell, the authors' gate layout), its exact sampler and
teacher-forced log-probabilities, Monte Carlo rollouts, and the CNN discriminator.

The LSTM is written as functions of a parameter dict (names as in the oracle's file:
oracle_lstm.py beside this file), so the oracle, the trained generator and its delayed rollout copy
run through the same code. Everything is jit- and vmap-friendly: no per-token Python loop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

LSTM_NAMES = ("embedding", "Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wog", "Uog", "bog", "Wc", "Uc", "bc",
              "Wo", "bo")


def lstm_shapes(vocab: int, embed: int, hidden: int) -> dict[str, tuple[int, ...]]:
    gate = {"W": (embed, hidden), "U": (hidden, hidden), "b": (hidden,)}
    shapes = {"embedding": (vocab, embed), "Wo": (hidden, vocab), "bo": (vocab,)}
    for g in ("i", "f", "og", "c"):
        shapes.update({f"{kind}{g}": shape for kind, shape in gate.items()})
    return {n: shapes[n] for n in LSTM_NAMES}


def cell(p, x, h, c):
    """The authors' LSTM cell: gates from the input embedding x and the previous h."""
    i = jax.nn.sigmoid(x @ p["Wi"] + h @ p["Ui"] + p["bi"])
    f = jax.nn.sigmoid(x @ p["Wf"] + h @ p["Uf"] + p["bf"])
    o = jax.nn.sigmoid(x @ p["Wog"] + h @ p["Uog"] + p["bog"])
    c = f * c + i * jnp.tanh(x @ p["Wc"] + h @ p["Uc"] + p["bc"])
    return o * jnp.tanh(c), c


def draw(key, logits):
    """One token per row of logits, P(k) = softmax(logits)_k, by inverse CDF: one uniform per row
    instead of one Gumbel per vocabulary entry (12x faster than jax.random.categorical at 5000
    tokens on CPU). Exact up to the float32 rounding of the cumulative sum."""
    cdf = jnp.cumsum(jax.nn.softmax(logits.astype(jnp.float32), -1), -1)
    u = jax.random.uniform(key, logits.shape[:-1]) * cdf[..., -1]
    return jnp.minimum((cdf <= u[..., None]).sum(-1), logits.shape[-1] - 1).astype(jnp.int32)


def sample(p, key, num: int, length: int, start_token: int = 0):
    """[num, length] int32 sequences drawn from the LSTM (softmax at temperature 1)."""
    hidden = p["Ui"].shape[0]

    def step(carry, k):
        h, c, token = carry
        h, c = cell(p, p["embedding"][token], h, c)
        token = draw(k, h @ p["Wo"] + p["bo"])
        return (h, c, token), token

    zeros = jnp.zeros((num, hidden))
    start = jnp.full((num,), start_token, jnp.int32)
    _, tokens = jax.lax.scan(step, (zeros, zeros, start), jax.random.split(key, length))
    return tokens.T


def shifted_inputs(sequences, start_token: int):
    """What the LSTM reads at each position: the start token, then the sequence minus its last."""
    start = jnp.full((sequences.shape[0], 1), start_token, sequences.dtype)
    return jnp.concatenate([start, sequences[:, :-1]], axis=1)


def states(p, inputs):
    """Teacher-forced (h, c) after each input: two [T, B, hidden] arrays."""
    hidden = p["Ui"].shape[0]

    def step(carry, token):
        h, c = cell(p, p["embedding"][token], *carry)
        return (h, c), (h, c)

    zeros = jnp.zeros((inputs.shape[0], hidden))
    _, (hs, cs) = jax.lax.scan(step, (zeros, zeros), inputs.T)
    return hs, cs


def token_log_probs(p, sequences, start_token: int = 0):
    """log p(token_t | tokens before t) of every position: [B, T]. One position at a time, so a
    large batch never holds all [B, T, vocab] logits at once."""
    hidden = p["Ui"].shape[0]

    def step(carry, xs):
        token_in, target = xs
        h, c = cell(p, p["embedding"][token_in], *carry)
        log_probs = jax.nn.log_softmax(h @ p["Wo"] + p["bo"], -1)
        return (h, c), jnp.take_along_axis(log_probs, target[:, None], -1)[:, 0]

    zeros = jnp.zeros((sequences.shape[0], hidden))
    inputs = shifted_inputs(sequences, start_token)
    _, log_probs = jax.lax.scan(step, (zeros, zeros), (inputs.T, sequences.T))
    return log_probs.T


def scheduled_log_probs(p, sequences, key, teacher_forcing, start_token: int = 0):
    """log p(token_t | inputs) of every position, where the input at each position is the true
    previous token with probability `teacher_forcing`, else a token drawn from the model's own
    prediction there (Bengio et al. 2015's scheduled sampling; no gradient through the draw)."""
    hidden = p["Ui"].shape[0]
    n = sequences.shape[0]

    def step(carry, xs):
        h, c, token_in = carry
        target, k = xs
        h, c = cell(p, p["embedding"][token_in], h, c)
        logits = h @ p["Wo"] + p["bo"]
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), target[:, None], -1)[:, 0]
        k_draw, k_coin = jax.random.split(k)
        own = jax.lax.stop_gradient(draw(k_draw, logits))
        use_true = jax.random.uniform(k_coin, (n,)) < teacher_forcing
        return (h, c, jnp.where(use_true, target, own)), log_prob

    zeros = jnp.zeros((n, hidden))
    start = jnp.full((n,), start_token, jnp.int32)
    keys = jax.random.split(key, sequences.shape[1])
    _, log_probs = jax.lax.scan(step, (zeros, zeros, start), (sequences.T, keys))
    return log_probs.T


def rollout_rewards(p, sequences, key, score, num_rollouts: int, start_token: int = 0):
    """SeqGAN's intermediate rewards [B, T]: for t < T, the mean `score` of `num_rollouts`
    completions of the first t tokens drawn from the LSTM `p` (Monte Carlo search); at T, the
    score of the sequence itself. `score` maps [N, T] sequences to [N] rewards.

    One prefix length at a time (lax.map: the memory of B * num_rollouts sequences, not of all
    T - 1 times that); each continues from the teacher-forced state after its prefix."""
    b, length = sequences.shape
    hs, cs = states(p, shifted_inputs(sequences, start_token))
    repeated = jnp.tile(sequences, (num_rollouts, 1))  # [R*B, T], rollout-major
    positions = jnp.arange(length)

    def complete(args):
        t, k = args  # prefix length t in 1..T-1

        def step(carry, kk):
            h, c, token = carry
            h, c = cell(p, p["embedding"][token], h, c)
            token = draw(kk, h @ p["Wo"] + p["bo"])
            return (h, c, token), token

        h0 = jnp.tile(hs[t - 1], (num_rollouts, 1))
        c0 = jnp.tile(cs[t - 1], (num_rollouts, 1))
        _, drawn = jax.lax.scan(step, (h0, c0, repeated[:, t - 1]), jax.random.split(k, length - 1))
        continuation = jnp.take(drawn.T, jnp.clip(positions - t, 0, length - 2), axis=1)
        completed = jnp.where(positions < t, repeated, continuation)
        return score(completed).reshape(num_rollouts, b).mean(0)

    prefix_lengths = jnp.arange(1, length)
    partial = jax.lax.map(complete, (prefix_lengths, jax.random.split(key, length - 1)))
    return jnp.concatenate([partial.T, score(sequences)[:, None]], axis=1)


class LSTMGenerator(nnx.Module):
    """The generator of SeqGAN: an LSTM language model shaped like the oracle, every parameter
    drawn N(0, init_std^2) (the authors' generator.py: 0.1)."""

    def __init__(self, vocab: int = 5000, embed: int = 32, hidden: int = 32, length: int = 20,
                 start_token: int = 0, init_std: float = 0.1, *, rngs: nnx.Rngs):
        self.length, self.start_token = length, start_token
        key = rngs.params()
        for i, (name, shape) in enumerate(lstm_shapes(vocab, embed, hidden).items()):
            setattr(self, name, nnx.Param(init_std * jax.random.normal(jax.random.fold_in(key, i), shape)))

    def weights(self) -> dict[str, jax.Array]:
        """The parameters as the dict the LSTM functions of this module take."""
        return {n: getattr(self, n)[...] for n in LSTM_NAMES}

    def __call__(self, tokens, train: bool = False, rngs: nnx.Rngs | None = None):
        """Teacher-forced next-token log-probabilities of the given tokens: [B, T]."""
        return token_log_probs(self.weights(), tokens, self.start_token)

    def sample(self, key, num: int):
        return sample(self.weights(), key, num, self.length, self.start_token)


class WindowConv(nnx.Module):
    """A 1-D 'VALID' convolution over [B, T, in] as one matmul of the stacked windows
    [B, T - width + 1, width * in] by the kernel [width, in, out]. Not repro.models.conv.Conv:
    for these shapes (width up to 20, one spatial dimension) the matmul's gradient runs 2x faster
    on XLA:CPU inside the loop's scan (and 8x faster than a bare nnx.Conv's). Parameters drawn
    as nnx.Conv draws them (kernel, then bias, one key each)."""

    def __init__(self, in_features: int, out_features: int, width: int, kernel_init, bias_init, *,
                 rngs: nnx.Rngs):
        self.kernel = nnx.Param(kernel_init(rngs.params(), (width, in_features, out_features)))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,)))

    def __call__(self, x):
        kernel = self.kernel[...]
        width, length = kernel.shape[0], x.shape[1] - kernel.shape[0] + 1
        windows = jnp.concatenate([x[:, i:i + length] for i in range(width)], axis=-1)
        return windows @ kernel.reshape(-1, kernel.shape[-1]) + self.bias[...]


class CNNDiscriminator(nnx.Module):
    """SeqGAN's discriminator (the authors' discriminator.py): token embeddings, one convolution
    per filter width with max-over-time pooling, a highway layer, dropout, two logits (fake,
    real). Initializations as theirs: embedding U(-1, 1), convolution and output weights
    truncated N(0, 0.1^2) with biases 0.1; highway layers flax's default."""

    def __init__(self, vocab: int = 5000, embed: int = 64, length: int = 20,
                 widths: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20),
                 filters: tuple[int, ...] = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160),
                 dropout: float = 0.25, *, rngs: nnx.Rngs):
        if len(widths) != len(filters) or max(widths) > length:
            raise ValueError(f"discriminator widths {widths} and filters {filters} must pair up, "
                             f"each width at most the sequence length {length}")
        self.dropout = dropout
        self.embedding = nnx.Param(jax.random.uniform(rngs.params(), (vocab, embed), minval=-1.0, maxval=1.0))
        normal = nnx.initializers.truncated_normal(0.1)
        bias = nnx.initializers.constant(0.1)
        self.convs = nnx.List([WindowConv(embed, f, w, normal, bias, rngs=rngs)
                               for w, f in zip(widths, filters, strict=True)])
        total = sum(filters)
        self.highway_h = nnx.Linear(total, total, rngs=rngs)
        self.highway_t = nnx.Linear(total, total, rngs=rngs)
        self.out = nnx.Linear(total, 2, kernel_init=normal, bias_init=bias, rngs=rngs)

    def __call__(self, tokens, dropout_key=None):
        """Logits [B, 2] (fake, real); dropout only when a key is given (training)."""
        x = self.embedding[...][tokens]
        pooled = jnp.concatenate([jax.nn.relu(conv(x)).max(1) for conv in self.convs], -1)
        gate = jax.nn.sigmoid(self.highway_t(pooled))  # the authors' gate bias: 0
        h = gate * jax.nn.relu(self.highway_h(pooled)) + (1.0 - gate) * pooled
        if dropout_key is not None and self.dropout:
            keep = jax.random.bernoulli(dropout_key, 1.0 - self.dropout, h.shape)
            h = jnp.where(keep, h / (1.0 - self.dropout), 0.0)
        return self.out(h)

    def l2(self):
        """tf.nn.l2_loss of the output layer's weights and bias (the authors' regularizer)."""
        return 0.5 * ((self.out.kernel[...] ** 2).sum() + (self.out.bias[...] ** 2).sum())

    def prob_real(self, tokens):
        return jax.nn.softmax(self(tokens), -1)[:, 1]


class SeqGAN(nnx.Module):
    """Generator and discriminator, trained together (experiments.seqgan.objectives.AdversarialSequence). The
    generator starts from an MLE run through `init_from` / `init_part=generator` (repro/warm_start.py)."""

    def __init__(self, generator: dict, discriminator: dict, *, rngs: nnx.Rngs):
        self.generator = LSTMGenerator(**generator, rngs=rngs)
        self.discriminator = CNNDiscriminator(**discriminator, rngs=rngs)

    def __call__(self, tokens, train: bool = False, rngs: nnx.Rngs | None = None):
        return self.generator(tokens)
