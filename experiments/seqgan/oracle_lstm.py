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

from experiments.seqgan import sequence
from repro.errors import DataError

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
    return {n: jnp.asarray(a, jnp.float32) for n, a in zip(sequence.LSTM_NAMES, arrays, strict=True)}


def sample(params, key, num: int, length: int = SEQ_LEN) -> jax.Array:
    """[num, length] token sequences drawn from the oracle (softmax at temperature 1)."""
    return sequence.sample(params, key, num, length, START_TOKEN)


def nll(params, sequences: jax.Array) -> jax.Array:
    """Mean per-token negative log-likelihood of [N, T] sequences under the oracle (nats)."""
    return -sequence.token_log_probs(params, sequences, START_TOKEN).mean()
