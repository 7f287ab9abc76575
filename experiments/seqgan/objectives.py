"""SeqGAN's objectives on the shared loop (Yu et al. 2017): maximum likelihood (with optional
scheduled sampling), adversarial training with Monte Carlo rollout rewards, and the PG-BLEU
baseline. The batch holds `tokens` [B, T]."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.seqgan import bleu, sequence
from repro.objectives import mean_loss_plus_penalty


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
    """SeqGAN training (Yu et al. 2017) of an experiments.seqgan.sequence.SeqGAN on the shared loop. Its
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
    training sequences (experiments/seqgan/bleu.py: clipped n-gram precisions, uniform weights, `smoothing`
    for an order with no match). Every step is a generator step on `g_batch` fresh samples; the
    loop's batches of real sequences only serve evaluation. `train_split` is the run's training
    data, given by build_trainer (it is data, not config)."""

    needs = ("train_split",)

    def __init__(self, vocab: int, max_n: int = 4, smoothing: float = 0.1, g_batch: int = 64,
                 rollouts: int = 16, reference_fraction: float = 1.0, reference_seed: int = 0, *,
                 train_split: dict | None = None):
        if train_split is None:
            raise ValueError("PolicyGradientBLEU scores against the training sequences: build it "
                             "through repro.run.build_trainer, which passes train_split")
        if not 0 < reference_fraction <= 1:
            raise ValueError(f"objective.reference_fraction={reference_fraction}: the share of training "
                             "sequences used as references, in (0, 1]")
        tokens = train_split["tokens"].reshape(len(train_split["tokens"]), -1)
        # The authors' pg_bleu.py keeps each real sequence as a reference with probability 0.4.
        if reference_fraction < 1:
            keep = np.random.default_rng(reference_seed).random(len(tokens)) < reference_fraction
            tokens = tokens[keep]
        self.references = len(tokens)
        self.vocab, self.table = vocab, bleu.ngram_table(tokens, vocab, max_n)
        self.smoothing, self.g_batch, self.rollouts = smoothing, g_batch, rollouts

    per_example = SequenceNLL.per_example  # the generator's NLL of the real sequences

    def reward(self, tokens):
        return bleu.sentence_bleu(self.table, tokens, self.vocab, self.smoothing)

    def train_loss(self, model, batch, *, rngs=None):
        return policy_gradient_loss(model, self.reward, rngs.dropout(), self.g_batch, self.rollouts)
