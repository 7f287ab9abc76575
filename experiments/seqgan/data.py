"""The SeqGAN synthetic data (Yu et al. 2017): token sequences drawn from the authors' oracle LSTM
(experiments/seqgan/oracle_lstm.py) with fixed seeds, 10,000 for training as in the paper and 10,000
more held out as `test` (the model's NLL on real data): one field, `tokens`, int32 [N, 20].
The draw is a pure function of the oracle file and the seed; the result file records the
SHA-256 of the drawn tokens next to the oracle's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import numpy as np

from experiments.seqgan import oracle_lstm
from repro.data.checksums import download_checked
from repro.data.records import DataSetRecord

SIZES = {"train": 10_000, "test": 10_000}
SEED = 0
RAW_URL = "https://raw.githubusercontent.com/LantaoYu/SeqGAN/e2b52fb/save/target_params_py3.pkl"


def draw_splits(params, seed: int = SEED) -> dict[str, dict[str, np.ndarray]]:
    splits = {}
    for i, (name, size) in enumerate(SIZES.items()):
        key = jax.random.fold_in(jax.random.key(seed), i)
        tokens = np.asarray(jax.jit(oracle_lstm.sample, static_argnums=2)(params, key, size))
        splits[name] = {"tokens": tokens.astype(np.int32)}
    return splits


def read_mirror(root: Path):
    """(splits, source, files) from <root>/seqgan/target_params_py3.pkl (checked by SHA-256)."""
    params = oracle_lstm.load_oracle(root)
    splits = draw_splits(params)
    files = {oracle_lstm.ORACLE_FILE: {"sha256": oracle_lstm.ORACLE_SHA256, "official": True}}
    for name, split in splits.items():  # what was drawn: equal hashes, equal data
        files[f"{name}_tokens(seed {SEED})"] = {
            "sha256": hashlib.sha256(split["tokens"].tobytes()).hexdigest(), "official": None}
    return splits, f"oracle samples from {root / 'seqgan' / oracle_lstm.ORACLE_FILE}", files


def read_online(cache_dir: str | None = None):
    """Fetch the oracle file from the authors' repository into a cache (checked), then read it."""
    root = Path(cache_dir or Path.home() / ".cache" / "repro")
    download_checked(RAW_URL, root / "seqgan" / oracle_lstm.ORACLE_FILE, oracle_lstm.ORACLE_SHA256,
                     "offline, put target_params_py3.pkl in <data dir>/seqgan/ and set REPRO_DATA_DIR")
    return read_mirror(root)


RECORDS = [DataSetRecord("seqgan_oracle", read_mirror, None, SIZES, read_online)]
