"""Data parallelism over every device with jax.sharding: batch split on a 'data' mesh axis,
parameters and data sets replicated. With several hosts (jax.distributed), every process holds
the whole (small) data set and computes the same batch indices; each device gathers only its
shard, so no host input pipeline is needed. BN statistics are over the global batch."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def data_mesh(enabled: bool = True) -> Mesh | None:
    """A 1-D mesh over all devices (of all processes), or None on one device / when disabled."""
    if not enabled or jax.device_count() == 1:
        return None
    # Auto axes: XLA propagates the batch split through the step (sharding-in-types not needed).
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def check_batch(batch_size: int, mesh: Mesh | None) -> None:
    if mesh is not None and batch_size % mesh.size:
        raise ValueError(f"train.batch_size={batch_size} must be divisible by the {mesh.size} "
                         "devices of the data-parallel mesh (or set train.data_parallel=false)")


def replicate(tree, mesh: Mesh | None):
    """Put every leaf on every device of the mesh (or on the default device without one)."""
    if mesh is None:
        return jax.device_put(tree)
    sharding = NamedSharding(mesh, P())

    def put(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def shard_batch(x, mesh: Mesh | None):
    """Inside jit: split the leading (batch) axis of x over the mesh's devices."""
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P("data")))
