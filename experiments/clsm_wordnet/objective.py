"""The clickthrough objective of DSSM and CLSM (Huang et al. 2013, eq. 4-5; Shen et al. 2014,
sec. 3.6): for each query Q, its clicked document D+ and `negatives` unclicked ones,

    P(D+ | Q) = exp(gamma R(Q, D+)) / sum over D in {D+, negatives} of exp(gamma R(Q, D)),

R the cosine of their vectors, and the loss -log P(D+ | Q), averaged over the batch. The paper
samples 4 random unclicked documents per query; here they are the clicked documents of the next
`negatives` queries of the batch (batches are random queries, so these are random documents,
and each costs no extra encoding). gamma: the paper sets it on held-out data without stating
its value; 10 here, chosen before any run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from experiments.clsm_wordnet.hashing import Hashing


def click_logits(q, d, gamma: float, negatives: int):
    """[B, 1 + negatives] gamma * cosines: column 0 each query's own document, then the next
    queries' documents (cyclically)."""
    batch = q.shape[0]
    if batch <= negatives:
        raise ValueError(f"a batch of {batch} queries cannot give {negatives} other documents as "
                         f"negatives: use train.batch_size > {negatives}")
    others = (jnp.arange(batch)[:, None] + jnp.arange(negatives + 1)[None]) % batch
    return gamma * jnp.take_along_axis(q @ d.T, others, axis=1)


class ClickSoftmax:
    needs = ("data_dir",)

    def __init__(self, gamma: float = 10.0, negatives: int = 4, data_dir: str | None = None):
        if gamma <= 0:
            raise ValueError(f"objective.gamma={gamma}: a positive smoothing factor")
        if negatives < 1:
            raise ValueError(f"objective.negatives={negatives}: at least one unclicked document")
        self.gamma, self.negatives = gamma, negatives
        self.hashing = Hashing(data_dir)

    def _terms(self, model, batch):
        q, dropped_q = self.hashing.encode(model, "query", batch["query"])
        d, dropped_d = self.hashing.encode(model, "document", batch["positive"])
        logits = click_logits(q, d, self.gamma, self.negatives)
        loss = -jax.nn.log_softmax(logits, axis=1)[:, 0]
        top = (logits[:, 0] >= logits[:, 1:].max(1)).astype(jnp.float32)
        return loss, top, dropped_q + dropped_d

    def per_example(self, model, batch, *, train: bool, rngs=None) -> dict:
        loss, top, _ = self._terms(model, batch)
        return {"loss": loss, "clicked_first": top}

    def train_loss(self, model, batch, *, rngs=None):
        loss, top, dropped = self._terms(model, batch)
        return loss.mean(), {"loss": loss.mean(), "clicked_first": top.mean(),
                             "dropped_trigrams": dropped.astype(jnp.float32)}
