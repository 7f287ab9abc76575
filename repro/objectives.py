"""What a model is trained and evaluated on. An objective maps (model, batch) to per-example
metrics (a classifier's loss and error, a density model's negative log-likelihood);
the training loss is the mean of the 'loss' entry plus any penalty the model itself adds
(`model.penalty()`, e.g. a KL term), so new papers need no loop changes. The batch is the
transformed dict of named fields (repro/data/fields.py): `image` (normalized), `label`,
`tokens`, ..."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from repro import bleu, mixture
from repro.interfaces import Penalized
from repro.models import sequence


def mean_loss_plus_penalty(model, per_example: dict):
    """Batch means of the per-example metrics; the loss is the mean 'loss' plus model.penalty()."""
    metrics = {k: v.mean() for k, v in per_example.items()}
    loss = metrics["loss"]
    if isinstance(model, Penalized):
        penalty = model.penalty()
        metrics["penalty"] = penalty
        loss = loss + penalty
    return loss, metrics


class Classification:
    """Softmax cross-entropy; reports loss, accuracy and error (%)."""

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        logits, labels = model(batch["image"], train=train, rngs=rngs), batch["label"]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return {"loss": loss, "accuracy": correct, "error_percent": 100.0 * (1.0 - correct)}

    def train_loss(self, model, batch, *, rngs=None):
        return mean_loss_plus_penalty(model, self.per_example(model, batch, train=True, rngs=rngs))


class BernoulliLikelihood:
    """Density model of binary images: the model's output is one logit per pixel (same shape as
    the input) and the target is the input image itself (labels are ignored). Inputs must be the
    0/1 pixels (binarized data, mean 0, std 1). Per image it reports

      nll_nats      -log p(x) = sum over pixels of the sigmoid cross-entropy, in nats
      bits_per_dim  the same in bits per pixel (nll_nats / (num_pixels * ln 2))

    and trains on the mean nll_nats over the batch. Lower is better for both."""

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        inputs = batch["image"]
        logits = model(inputs, train=train, rngs=rngs).astype(jnp.float32)
        if logits.shape != inputs.shape:
            raise ValueError(f"a Bernoulli model must return one logit per input value: "
                             f"logits {logits.shape} vs inputs {inputs.shape}")
        per_pixel = optax.sigmoid_binary_cross_entropy(logits, inputs.astype(jnp.float32))
        nll = per_pixel.reshape(len(inputs), -1).sum(-1)
        num_pixels = per_pixel[0].size
        return {"loss": nll, "nll_nats": nll, "bits_per_dim": nll / (num_pixels * math.log(2.0))}

    def train_loss(self, model, batch, *, rngs=None):
        return mean_loss_plus_penalty(model, self.per_example(model, batch, train=True, rngs=rngs))


class MixtureELBO:
    """Negative ELBO, in nats per image, of a VAE with a Gaussian-mixture posterior
    (repro.models.vae.MixtureVAE): -E_q[log p(x|z) + log p(z) - log q(z|x)], one z per image.

    `estimator` is how its gradient reaches the encoder: 'implicit' backpropagates through the
    mixture sample (repro/mixture.py, Graves 2016); 'score' uses the score-function estimator
    (f - b) grad log q(z|x) with b the mean f of the other images in the batch ('score_no_baseline':
    b = 0). Evaluation uses a fixed key per batch, so the test bound is deterministic."""

    def __init__(self, estimator: str = "implicit", eval_seed: int = 0):
        if estimator not in ("implicit", "score", "score_no_baseline"):
            raise ValueError(f"unknown estimator {estimator!r}: implicit, score or score_no_baseline")
        self.estimator, self.eval_seed = estimator, eval_seed

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        key = rngs.dropout() if rngs is not None else jax.random.key(self.eval_seed)
        inputs = batch["image"]
        x = inputs.reshape(inputs.shape[0], -1).astype(jnp.float32)
        logits, means, log_scales = model.posterior(inputs)
        z = mixture.sample(key, logits, means, log_scales)
        if self.estimator != "implicit":
            z = jax.lax.stop_gradient(z)
        log_q = mixture.log_prob(z, logits, means, log_scales)
        log_prior = -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * math.log(2.0 * math.pi)
        log_lik = -optax.sigmoid_binary_cross_entropy(model.decode(z), x).sum(-1)
        neg_elbo = -(log_lik + log_prior - log_q)
        loss = neg_elbo
        if self.estimator != "implicit":
            # Surrogate whose gradient is the score-function estimate: (f - b) grad log q(z|x).
            f = jax.lax.stop_gradient(neg_elbo)
            n = f.shape[0]
            baseline = (f.sum() - f) / max(n - 1, 1) if self.estimator == "score" else 0.0
            loss = neg_elbo + (f - baseline) * (log_q - jax.lax.stop_gradient(log_q))
        return {"loss": loss, "neg_elbo_nats": neg_elbo}

    def train_loss(self, model, batch, *, rngs=None):
        return mean_loss_plus_penalty(model, self.per_example(model, batch, train=True, rngs=rngs))


class SequenceNLL:
    """Next-token negative log-likelihood of token sequences (inputs: int tokens [B, T]; the
    model returns log p(token_t | tokens before t), [B, T]), in nats per token.

    With `scheduled_sampling_k`, training feeds the model's own draw instead of the true previous
    token with probability 1 - eps, eps = k / (k + exp(epoch / k)) (Bengio et al. 2015's inverse
    sigmoid decay; epoch = step / steps_per_epoch). Evaluation is always teacher-forced."""

    needs = ("step",)  # the loop passes train_loss the step (repro/interfaces.py: NEEDS)

    def __init__(self, scheduled_sampling_k: float | None = None, steps_per_epoch: int | None = None):
        if scheduled_sampling_k is not None and not steps_per_epoch:
            raise ValueError("scheduled sampling decays per epoch: set objective.steps_per_epoch")
        self.k, self.steps_per_epoch = scheduled_sampling_k, steps_per_epoch

    def teacher_forcing(self, step):
        epoch = step / self.steps_per_epoch
        return self.k / (self.k + jnp.exp(epoch / self.k))

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        nll = -model(batch["tokens"], train=train, rngs=rngs).mean(-1)
        return {"loss": nll, "nll": nll}

    def train_loss(self, model, batch, *, rngs=None, step=None):
        if self.k is None:
            per_example = self.per_example(model, batch, train=True, rngs=rngs)
            return mean_loss_plus_penalty(model, per_example)
        eps = self.teacher_forcing(step)
        log_probs = sequence.scheduled_log_probs(model.weights(), batch["tokens"], rngs.dropout(), eps,
                                                 model.start_token)
        nll = -log_probs.mean()
        return nll, {"loss": nll, "teacher_forcing": eps}


def policy_gradient_loss(generator, score, key, num: int, rollouts: int):
    """SeqGAN's generator step (Yu et al. 2017, eq. 8): `num` fresh samples of the generator,
    rewards from `rollouts` Monte Carlo completions per prefix scored by `score` ([N, T] tokens
    -> [N] rewards, sequence.rollout_rewards), loss -sum over samples and positions of
    log p(token) * reward (REINFORCE; the authors' sum, no baseline). (loss, metrics)"""
    length, start = generator.length, generator.start_token
    key_sample, key_rollout = jax.random.split(key)
    weights = generator.weights()
    frozen = jax.lax.stop_gradient(weights)
    fake = sequence.sample(frozen, key_sample, num, length, start)
    rewards = sequence.rollout_rewards(frozen, fake, key_rollout, score, rollouts, start)
    loss = -(sequence.token_log_probs(weights, fake, start) * rewards).sum()
    return loss, {"loss": loss, "reward": rewards.mean(), "final_reward": rewards[:, -1].mean()}


class AdversarialSequence:
    """SeqGAN training (Yu et al. 2017) of a repro.models.sequence.SeqGAN on the shared loop. Its
    `phases` are the model's parts, trained in turn; `phase(step)` says whose steps come next
    (the loop runs them as a chunk of that part's loss, gradient and optimizer only):

      steps [0, d_pretrain_steps)   the discriminator, pre-trained;
      then cycles of 1 generator step followed by d_steps discriminator steps.

    Discriminator step: the batch's real sequences (label real) and as many fresh samples of the
    generator (label fake), mean cross-entropy + l2 * the output layer's tf.nn.l2_loss (the
    authors' regularizer). Generator step: g_batch fresh samples, rewards from `rollouts` Monte
    Carlo completions per prefix scored by the discriminator (sequence.rollout_rewards), loss
    -sum over batch and positions of log p(token) * reward (REINFORCE; the authors' sum, no
    baseline). The rollout policy is the generator itself: the paper's choice, and in effect the
    authors' code's (its rollout.update_params mixes tf.identity reads of the generator's current
    variables, so its "delayed" copy equals the generator)."""

    phases = ("generator", "discriminator")
    needs = ("phase",)

    def __init__(self, d_pretrain_steps: int, d_steps: int, g_batch: int = 64, rollouts: int = 16,
                 l2: float = 0.2):
        self.d_pretrain_steps, self.d_steps = d_pretrain_steps, d_steps
        self.g_batch, self.rollouts, self.l2 = g_batch, rollouts, l2

    def phase(self, step: int) -> tuple[str, int]:
        """(the part that step `step` trains, how many steps from it on train that part)."""
        if step < self.d_pretrain_steps:
            return "discriminator", self.d_pretrain_steps - step
        position = (step - self.d_pretrain_steps) % (self.d_steps + 1)
        return ("generator", 1) if position == 0 else ("discriminator", self.d_steps + 1 - position)

    per_example = SequenceNLL.per_example  # the generator's NLL of the real sequences

    def train_loss(self, model, batch, *, rngs=None, phase="discriminator"):
        generator, disc = model.generator, model.discriminator
        inputs = batch["tokens"]
        length, start = generator.length, generator.start_token
        if phase == "generator":
            score = lambda tokens: jax.lax.stop_gradient(disc.prob_real(tokens))  # noqa: E731
            return policy_gradient_loss(generator, score, rngs.dropout(), self.g_batch, self.rollouts)
        key_sample, key_other = jax.random.split(rngs.dropout())
        frozen = jax.lax.stop_gradient(generator.weights())
        fake = sequence.sample(frozen, key_sample, inputs.shape[0], length, start)
        tokens = jnp.concatenate([inputs, fake])
        is_real = jnp.concatenate([jnp.ones(len(inputs), jnp.int32), jnp.zeros(len(fake), jnp.int32)])
        logits = disc(tokens, dropout_key=key_other)
        xent = optax.softmax_cross_entropy_with_integer_labels(logits, is_real).mean()
        accuracy = (jnp.argmax(logits, -1) == is_real).mean()
        loss = xent + self.l2 * disc.l2()
        return loss, {"loss": loss, "d_xent": xent, "d_accuracy": accuracy}


class PolicyGradientBLEU:
    """PG-BLEU, SeqGAN's baseline (Yu et al. 2017, Table 1): SeqGAN's generator step with no
    discriminator, each Monte Carlo completion rewarded by its sentence BLEU-`max_n` against the
    training sequences (repro/bleu.py: clipped n-gram precisions, uniform weights, `smoothing`
    for an order with no match). Every step is a generator step on `g_batch` fresh samples; the
    loop's batches of real sequences only serve evaluation. `train_split` is the run's training
    data, given by build_trainer (it is data, not config)."""

    needs = ("train_split",)

    def __init__(self, vocab: int, max_n: int = 4, smoothing: float = 0.1, g_batch: int = 64,
                 rollouts: int = 16, *, train_split: dict | None = None):
        if train_split is None:
            raise ValueError("PolicyGradientBLEU scores against the training sequences: build it "
                             "through repro.run.build_trainer, which passes train_split")
        tokens = train_split["tokens"].reshape(len(train_split["tokens"]), -1)
        self.vocab, self.table = vocab, bleu.ngram_table(tokens, vocab, max_n)
        self.smoothing, self.g_batch, self.rollouts = smoothing, g_batch, rollouts

    per_example = SequenceNLL.per_example  # the generator's NLL of the real sequences

    def reward(self, tokens):
        return bleu.sentence_bleu(self.table, tokens, self.vocab, self.smoothing)

    def train_loss(self, model, batch, *, rngs=None):
        return policy_gradient_loss(model, self.reward, rngs.dropout(), self.g_batch, self.rollouts)
