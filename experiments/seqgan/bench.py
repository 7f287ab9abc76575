"""What SeqGAN costs on this machine: sampling 10,000 sequences from the oracle (the inverse-CDF
sampler against jax.random.categorical), one MLE epoch, one discriminator epoch (312 steps of
32 real + 32 generated sequences), one adversarial generator step (64 samples, 16 rollouts
per prefix, rewards, update) and one PG-BLEU step (the same with BLEU rewards), each a compiled
chunk of the shared loop, and the BLEU reward alone; FLOP/s against the measured matmul peak:

    python -m experiments.seqgan.bench [--repeats 2]      (make bench-seqgan)

FLOPs: XLA's count of a one-step chunk for the MLE and discriminator steps (their 20-step
sampling scan counted once: a slight undercount); for the generator step, counted by hand from
the discriminator's measured FLOPs per sequence and the LSTM's per token (its scans)."""

from __future__ import annotations

import argparse

import jax
from flax import nnx

from bench.timing import best_of, flops_of, matmul_peak, time_chunk
from experiments.seqgan import oracle_lstm, sequence
from repro.configuration import compose
from repro.run import build_trainer, dataset_for

ADVERSARIAL = ["model=seqgan", "objective=adversarial_sequence", "tag=seqgan", "train.batch_size=32",
               "optim.groups=[{part:generator},{part:discriminator,lr:0.0001,grad_clip:null}]",
               "train.checkpoint_every=0"]


def lstm_flops_per_token(vocab=5000, embed=32, hidden=32) -> float:
    return 2.0 * (4 * (embed + hidden) * hidden + hidden * vocab) + 5.0 * vocab  # + softmax/CDF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    jax.config.update("jax_default_matmul_precision", "highest")
    peak = matmul_peak()
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s ({jax.devices()[0].device_kind})")
    cfg = compose(["experiment=seqgan"])
    data = dataset_for(cfg)
    oracle = oracle_lstm.load_oracle(cfg.data.dir)
    key = jax.random.key(0)
    rows = []

    ours = jax.jit(lambda k: oracle_lstm.sample(oracle, k, 10_000))

    def categorical(k):
        def step(carry, kk):
            h, c, token = carry
            h, c = sequence.cell(oracle, oracle["embedding"][token], h, c)
            token = jax.random.categorical(kk, h @ oracle["Wo"] + oracle["bo"])
            return (h, c, token), token
        zeros = jax.numpy.zeros((10_000, 32))
        start = jax.numpy.zeros((10_000,), jax.numpy.int32)
        return jax.lax.scan(step, (zeros, zeros, start), jax.random.split(k, 20))[1]

    sample_flops = 10_000 * 20 * lstm_flops_per_token()
    for name, fn in (("sample 10,000 sequences (inverse CDF)", ours),
                     ("sample 10,000 sequences (jax.random.categorical)", jax.jit(categorical))):
        s = best_of(lambda fn=fn: fn(key), args.repeats)
        rows.append((name, s, sample_flops))

    mle = build_trainer(cfg, data)
    timing, _ = time_chunk(mle, 156, args.repeats)
    rows.append(("one MLE epoch (156 steps of 64)", timing["ms_per_step"] * 0.156,
                 (timing["gflops_per_step"] or 0) * 1e9 * 156))

    d_cfg = compose(["experiment=seqgan", *ADVERSARIAL, "objective.d_pretrain_steps=1000000",
                     "objective.d_steps=1"])
    disc = build_trainer(d_cfg, data)
    timing, _ = time_chunk(disc, 312, 1, phase="discriminator")
    d_step_flops = (timing["gflops_per_step"] or 0) * 1e9
    rows.append(("one discriminator epoch (312 steps of 32 + 32)", timing["ms_per_step"] * 0.312,
                 d_step_flops * 312))

    g_cfg = compose(["experiment=seqgan", *ADVERSARIAL, "objective.d_pretrain_steps=0",
                     "objective.d_steps=0"])
    gen = build_trainer(g_cfg, data)
    timing, _ = time_chunk(gen, 1, args.repeats, phase="generator")
    # Scored: 64 samples x (19 prefixes x 16 rollouts + 1); drawn: 64 x 20 + 19 x 16 x 64 x 19
    # tokens (each prefix's scan runs 19 steps); the update: about 3x a forward of 64 x 20 tokens.
    discriminator = sequence.CNNDiscriminator(rngs=nnx.Rngs(0))
    forward = jax.jit(lambda x: discriminator(x)).lower(data.split("train")["image"][:64]).compile()
    per_sequence = (flops_of(forward) or 0) / 64
    g, r, t = 64, 16, 20
    tokens = g * t + (t - 1) * r * g * (t - 1) + 3 * g * t
    g_flops = per_sequence * g * ((t - 1) * r + 1) + lstm_flops_per_token() * tokens
    rows.append(("one generator step (64 samples, 16 rollouts)", timing["ms_per_step"] / 1e3, g_flops))

    # PG-BLEU: the same step with BLEU-4 against the 10,000 training sequences as the reward.
    pg = build_trainer(compose(["experiment=seqgan", "objective=pg_bleu", "train.checkpoint_every=0"]), data)
    timing, _ = time_chunk(pg, 1, args.repeats)
    rows.append(("one PG-BLEU generator step (64 samples, 16 rollouts)", timing["ms_per_step"] / 1e3,
                 lstm_flops_per_token() * tokens))
    reward = jax.jit(pg.objective.reward)
    rollouts = jax.numpy.asarray(data.split("test")["image"][:r * g])
    rows.append((f"BLEU-4 reward of {r * g} sequences", best_of(lambda: reward(rollouts), args.repeats),
                 0.0))

    print("| what | seconds | GFLOP | GFLOP/s | of matmul peak |")
    print("|---|---|---|---|---|")
    for name, s, flops in rows:
        rate = flops / s if flops else None
        print(f"| {name} | {s:.3f} | {flops / 1e9:.1f} | {rate / 1e9 if rate else float('nan'):.1f} | "
              f"{rate / peak if rate else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
