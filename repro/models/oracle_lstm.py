"""The SeqGAN synthetic-data oracle (Yu et al. 2017): a fixed random LSTM over 5000 tokens whose
parameters are the authors' file `target_params_py3.pkl` (../shared/data/seqgan/README.md has
its format and cell). It generates the training data and scores a model's samples: the oracle
NLL, the mean per-token negative log-likelihood under it (nats per token).

The file is a pickle, and unpickling runs code: its SHA-256 is checked before it is opened.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from repro.data.errors import DataError

ORACLE_FILE = "target_params_py3.pkl"
ORACLE_SHA256 = "5ac794a695dd6e0eb2bb689f3dfda55e4e0053e8c0399e6242630a95f1e60e8a"
ORACLE_URL = "https://github.com/LantaoYu/SeqGAN (save/target_params_py3.pkl at commit e2b52fb)"
SEQ_LEN, START_TOKEN = 20, 0
SHAPES = [(5000, 32)] + [(32, 32), (32, 32), (32,)] * 4 + [(32, 5000), (5000,)]


def load_oracle(data_dir: str | Path) -> dict[str, jax.Array]:
    """The oracle's parameters from <data_dir>/seqgan/, checked (SHA-256, then shapes)."""
    path = Path(data_dir) / "seqgan" / ORACLE_FILE
    if not path.exists():
        raise DataError(f"{path} not found: put the SeqGAN oracle there ({ORACLE_URL}; SHA-256 "
                        f"{ORACLE_SHA256}) or point data.dir / REPRO_DATA_DIR at a folder holding seqgan/")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != ORACLE_SHA256:
        raise DataError(f"{path} has SHA-256 {digest}, not the authors' file's {ORACLE_SHA256}: it is "
                        f"corrupt or another file; fetch it again from {ORACLE_URL}")
    arrays = pickle.loads(raw)  # noqa: S301 - the checksum above vouches for the content
    if [np.shape(a) for a in arrays] != SHAPES:
        raise DataError(f"{path}: unexpected parameter shapes {[np.shape(a) for a in arrays]}")
    names = ["embedding", "Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wog", "Uog", "bog", "Wc", "Uc", "bc",
             "Wo", "bo"]
    return {n: jnp.asarray(a, jnp.float32) for n, a in zip(names, arrays, strict=True)}


def _cell(p, x, h, c):
    """The authors' LSTM cell: gates from the input embedding x and the previous h."""
    i = jax.nn.sigmoid(x @ p["Wi"] + h @ p["Ui"] + p["bi"])
    f = jax.nn.sigmoid(x @ p["Wf"] + h @ p["Uf"] + p["bf"])
    o = jax.nn.sigmoid(x @ p["Wog"] + h @ p["Uog"] + p["bog"])
    c = f * c + i * jnp.tanh(x @ p["Wc"] + h @ p["Uc"] + p["bc"])
    h = o * jnp.tanh(c)
    return h, c, h @ p["Wo"] + p["bo"]


def sample(params, key, num: int, length: int = SEQ_LEN) -> jax.Array:
    """[num, length] token sequences drawn from the oracle (softmax at temperature 1)."""
    hidden = params["Ui"].shape[0]

    def step(carry, k):
        h, c, token = carry
        h, c, logits = _cell(params, params["embedding"][token], h, c)
        token = jax.random.categorical(k, logits)
        return (h, c, token), token

    zeros = jnp.zeros((num, hidden))
    start = jnp.full((num,), START_TOKEN, jnp.int32)
    _, tokens = jax.lax.scan(step, (zeros, zeros, start), jax.random.split(key, length))
    return tokens.T


def nll(params, sequences: jax.Array) -> jax.Array:
    """Mean per-token negative log-likelihood of [N, T] sequences under the oracle (nats)."""
    hidden = params["Ui"].shape[0]
    inputs = jnp.concatenate([jnp.full((sequences.shape[0], 1), START_TOKEN, sequences.dtype),
                              sequences[:, :-1]], axis=1)

    def step(carry, xs):
        h, c = carry
        token_in, token_out = xs
        h, c, logits = _cell(params, params["embedding"][token_in], h, c)
        return (h, c), -jax.nn.log_softmax(logits)[jnp.arange(token_out.shape[0]), token_out]

    zeros = jnp.zeros((sequences.shape[0], hidden))
    _, per_token = jax.lax.scan(step, (zeros, zeros), (inputs.T, sequences.T))
    return per_token.mean()
