"""optax optimizers from config: learning-rate schedule, optimizer, decoupled weight decay."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _base_schedule(cfg):
    kind = cfg.schedule
    if kind == "constant":
        return optax.constant_schedule(cfg.lr)
    if kind == "piecewise":
        boundaries = {int(b): float(cfg.decay_factor) for b in cfg.boundaries}
        return optax.piecewise_constant_schedule(cfg.lr, boundaries)
    if kind == "cosine":
        return optax.cosine_decay_schedule(cfg.lr, int(cfg.decay_steps))
    if kind == "exponential":  # lr * decay_factor ** (step // decay_steps), e.g. 0.94 every two epochs
        return optax.exponential_decay(cfg.lr, int(cfg.decay_steps), float(cfg.decay_factor), staircase=True)
    raise ValueError(f"unknown optim.schedule {kind!r}; use constant, piecewise, cosine or exponential")


def make_schedule(cfg):
    """constant | piecewise (lr * factor at each boundary step) | cosine, optionally preceded by
    a constant warm-up: `warmup_lr` for steps < `warmup_steps` (He et al.'s ResNet-110 recipe).

    The warm-up replaces the first steps instead of shifting the schedule (unlike
    optax.join_schedules), so piecewise boundaries stay at their absolute steps.
    """
    base = _base_schedule(cfg)
    warmup_steps = cfg.warmup_steps or 0
    if not warmup_steps:
        return base
    warmup_lr = float(cfg.warmup_lr)
    return lambda step: jnp.where(step < warmup_steps, warmup_lr, base(step))


def kernels_only(params):
    """Weight-decay mask: matrices and conv kernels, not biases or BN scales (ndim > 1)."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


DECAY_MASKS = {"kernels": kernels_only, "all": None}  # None: decay every parameter


def make_optimizer(cfg) -> optax.GradientTransformation:
    """From an `optim` config (repro/schema.py: OptimConfig, where each key is documented). With
    `groups`, one optimizer per named top-level part of the model (`grouped`), each the base
    config with that group's overrides."""
    if cfg.get("groups"):
        from omegaconf import OmegaConf

        base = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "groups"])
        parts = {}
        for group in cfg.groups:
            if "part" not in group:
                raise ValueError(f"optim.groups entry {dict(group)} names no part: add "
                                 "part: <model attribute>")
            overrides = {k: v for k, v in group.items() if k != "part"}
            parts[group.part] = make_optimizer(OmegaConf.merge(base, overrides))
        return grouped(parts)
    schedule = make_schedule(cfg)
    name = cfg.name
    if name == "sgd":
        opt = optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=bool(cfg.nesterov))
    elif name == "adam":
        opt = optax.adam(schedule, b1=0.9 if cfg.b1 is None else cfg.b1,
                         b2=0.999 if cfg.b2 is None else cfg.b2)
    elif name == "rmsprop":
        opt = optax.rmsprop(schedule, decay=0.9 if cfg.decay is None else cfg.decay,
                            eps=1e-8 if cfg.eps is None else cfg.eps, eps_in_sqrt=True)
    else:
        raise ValueError(f"unknown optim.name {name!r}; use sgd, adam or rmsprop")
    weight_decay = cfg.weight_decay
    if weight_decay:
        # L2 added to the gradient before momentum, as in the He et al. / PyTorch recipe.
        mask_name = cfg.weight_decay_mask or "kernels"
        if mask_name not in DECAY_MASKS:
            raise ValueError(f"unknown optim.weight_decay_mask {mask_name!r}; use kernels or all")
        opt = optax.chain(optax.add_decayed_weights(weight_decay, mask=DECAY_MASKS[mask_name]), opt)
    if cfg.get("grad_clip"):
        opt = optax.chain(optax.clip_by_global_norm(float(cfg.grad_clip)), opt)
    return opt


def _top_key(path) -> str:
    first = path[0]
    return str(getattr(first, "key", getattr(first, "name", first)))


def grouped(optimizers: dict[str, optax.GradientTransformation]) -> optax.GradientTransformationExtraArgs:
    """One optimizer per top-level part of the model (the first key of its parameters' paths,
    e.g. a GAN's `generator` and `discriminator`), each with its own state. `update(...,
    active={name: bool})` (Python bools: the loop's phases are static) updates only the active
    parts: the others' parameters and optimizer state stay as they are (alternating updates;
    Adam's moments do not decay on skipped steps). Each optimizer sees its part's leaves as a list."""

    def parts(tree):
        """({part: [leaves]}, the part of each leaf in flattening order, the tree's structure)."""
        with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree)
        owners = [_top_key(path) for path, _ in with_paths]
        extra = sorted(set(owners) - set(optimizers))
        if extra:
            raise ValueError(f"model parts {extra} have no optimizer: optim.groups names "
                             f"{sorted(optimizers)}; add them there")
        split = {name: [leaf for (_, leaf), o in zip(with_paths, owners, strict=True) if o == name]
                 for name in optimizers}
        return split, owners, treedef

    def init(params):
        split, _, _ = parts(params)
        return {name: opt.init(split[name]) for name, opt in optimizers.items()}

    def update(updates, state, params=None, active=None, **_):
        grads, owners, treedef = parts(updates)
        params = parts(params)[0] if params is not None else dict.fromkeys(optimizers)
        new_updates, new_state = {}, {}
        for name, opt in optimizers.items():
            if active is None or active.get(name, True):
                new_updates[name], new_state[name] = opt.update(grads[name], state[name], params[name])
            else:
                new_updates[name] = [jnp.zeros_like(g) for g in grads[name]]
                new_state[name] = state[name]
        remaining = {name: iter(leaves) for name, leaves in new_updates.items()}
        leaves = [next(remaining[o]) for o in owners]
        return jax.tree_util.tree_unflatten(treedef, leaves), new_state

    return optax.GradientTransformationExtraArgs(init, update)
