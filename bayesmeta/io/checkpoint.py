"""Save and load learners: tensors in safetensors, everything else in JSON.

No pickle is involved, so loading a checkpoint never runs code. The learner's
``config()`` is stored in the safetensors header, so that :func:`load_learner`
can rebuild the learner before loading its weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from bayesmeta.errors import BayesmetaError
from bayesmeta.learners.base import MetaLearner
from bayesmeta.learners.bayesian_maml import BayesianMAML
from bayesmeta.learners.maml import MAML
from bayesmeta.learners.matching import MatchingNet
from bayesmeta.learners.protonet import BayesianProtoNet, ProtoNet
from bayesmeta.learners.reptile import Reptile
from bayesmeta.learners.variational import VariationalMetaLearner

__all__ = [
    "CheckpointError",
    "build_learner",
    "load_learner",
    "save_learner",
    "tensor_checksum",
]

FORMAT = "bayesmeta-checkpoint-1"
_LEARNERS: dict[str, type[MetaLearner]] = {
    "BayesianMAML": BayesianMAML,
    "BayesianProtoNet": BayesianProtoNet,
    "MAML": MAML,
    "MatchingNet": MatchingNet,
    "ProtoNet": ProtoNet,
    "Reptile": Reptile,
    "VariationalMetaLearner": VariationalMetaLearner,
}


def tensor_checksum(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class CheckpointError(BayesmetaError, ValueError):
    """A checkpoint is missing, corrupted, or does not fit the learner."""


def build_learner(config: dict[str, Any]) -> MetaLearner:
    """Rebuild a learner (with fresh weights) from its ``config()`` dictionary."""
    cfg = dict(config)
    name = cfg.pop("learner", None)
    if name not in _LEARNERS:
        raise CheckpointError(f"unknown learner {name!r}; known: {sorted(_LEARNERS)}")
    net = cfg.pop("net", None)
    if not isinstance(net, dict) or not ("sizes" in net or "conv4" in net):
        raise CheckpointError(
            "the checkpoint does not describe its network (only learners on an MLP or Conv4 "
            "rebuild themselves); build the learner yourself and call load_state_dict"
        )
    if cfg.get("likelihood") == "custom":
        raise CheckpointError(
            "the checkpoint's learner used a custom Likelihood object, which a config cannot "
            "rebuild; build the learner yourself and call load_state_dict"
        )
    from bayesmeta.nets.conv import Conv4
    from bayesmeta.nets.mlp import MLP

    cls = _LEARNERS[name]
    if "conv4" in net:
        return cls(Conv4(**net["conv4"]), **cfg)
    return cls(MLP(net["sizes"], net.get("activation", "relu")), **cfg)


def save_learner(learner: MetaLearner, path: str | Path) -> Path:
    """Write ``learner``'s state and config to ``path`` (a ``.safetensors`` file).

    Returns
    -------
    Path
        The written file.

    """
    if not isinstance(learner, MetaLearner):
        raise TypeError(
            f"learner must be a bayesmeta learner (a MetaLearner), got {type(learner).__name__}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in learner.state_dict().items()}
    meta = {
        "format": FORMAT,
        "config": json.dumps(learner.config()),
        "sha256": tensor_checksum(state),
    }
    save_file(state, str(path), metadata=meta)
    return path


def load_learner(path: str | Path, *, map_location: str | torch.device = "cpu") -> MetaLearner:
    """Rebuild a learner saved by :func:`save_learner`.

    Raises
    ------
    CheckpointError
        If the file is missing, truncated or corrupted (a SHA-256 checksum of
        the tensors is stored and checked), or was not written by bayesmeta.

    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        state = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} was not written by bayesmeta.io.save_learner")
    if "sha256" in meta and tensor_checksum(state) != meta["sha256"]:
        raise CheckpointError(f"{path} is corrupted: its tensors do not match their checksum")
    learner = build_learner(json.loads(meta["config"]))
    try:
        learner.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match its own config: {err}") from err
    return learner.to(map_location)
