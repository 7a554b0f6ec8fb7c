"""Deprecated: moved to :mod:`bayesmeta.training.distributed`; import from there.

The old path keeps working, with a ``DeprecationWarning``, for one release.
"""

from bayesmeta._deprecated import moved
from bayesmeta.training.distributed import (
    DistributedError,
    all_reduce_gradients,
    broadcast_seed,
    check_same_batch,
    distributed_meta_gradients,
    init_from_env,
    is_distributed,
    shard,
    shard_range,
    sync_parameters,
)

__all__ = [
    "DistributedError",
    "all_reduce_gradients",
    "broadcast_seed",
    "check_same_batch",
    "distributed_meta_gradients",
    "init_from_env",
    "is_distributed",
    "shard",
    "shard_range",
    "sync_parameters",
]

moved(__name__, "bayesmeta.training.distributed")
