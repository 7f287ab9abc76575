"""The SeqGAN oracle (experiments/seqgan/oracle_lstm.py): the authors' file checked before it is opened,
sampling and the oracle NLL (the first piece of the SeqGAN reproduction)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REAL_DATA, numpy_lstm_step

from experiments.seqgan import oracle_lstm
from repro.data import DataError

needs_oracle = pytest.mark.skipif(not (REAL_DATA / "seqgan" / oracle_lstm.ORACLE_FILE).exists(),
                                  reason="no SeqGAN oracle mirror")


def test_a_missing_or_altered_oracle_file_is_refused_before_unpickling(tmp_path):
    with pytest.raises(DataError, match="not found: put the SeqGAN oracle there"):
        oracle_lstm.load_oracle(tmp_path)
    (tmp_path / "seqgan").mkdir()
    (tmp_path / "seqgan" / oracle_lstm.ORACLE_FILE).write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")
    with pytest.raises(DataError, match="SHA-256 .* not the authors'"):
        oracle_lstm.load_oracle(tmp_path)


@needs_oracle
def test_oracle_samples_and_nll():
    params = oracle_lstm.load_oracle(REAL_DATA)
    tokens = jax.jit(lambda k: oracle_lstm.sample(params, k, 10000))(jax.random.key(0))
    assert tokens.shape == (10000, 20) and int(tokens.min()) >= 0 and int(tokens.max()) < 5000
    # Measured at the commit adding this test: 5.757 nats/token on its own samples (the oracle's
    # entropy rate), 11.437 on uniform tokens (the "about 11.44").
    own = float(jax.jit(lambda x: oracle_lstm.nll(params, x))(tokens))
    uniform = jax.random.randint(jax.random.key(1), (10000, 20), 0, 5000)
    assert 5.6 < own < 5.9
    assert 11.3 < float(oracle_lstm.nll(params, uniform)) < 11.6


@needs_oracle
def test_nll_is_the_cells_log_likelihood_token_by_token():
    params = oracle_lstm.load_oracle(REAL_DATA)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    seqs = np.asarray(oracle_lstm.sample(params, jax.random.key(2), 2))

    total = 0.0
    for seq in seqs:
        h = c = np.zeros(32)
        prev = 0
        for token in seq:
            h, c, log_probs = numpy_lstm_step(p, prev, h, c)
            total -= log_probs[token]
            prev = token
    ours = float(oracle_lstm.nll(params, jnp.asarray(seqs)))
    assert ours == pytest.approx(total / seqs.size, rel=1e-5)
