"""Save and load learners: tensors in safetensors, everything else in JSON.

No pickle is involved, so loading a checkpoint never runs code. The learner's
``config()`` is stored in the safetensors header, so that :func:`load_learner`
can rebuild the learner before loading its weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bayesmeta.errors import CheckpointError
from bayesmeta.learners.base import MetaLearner
from bayesmeta.learners.registry import learner_class, register
from bayesmeta.nets.spec import build_net
from bayesmeta.training.state import tensor_checksum
from bayesmeta.transfer.last_layer import BayesianLastLayer
from bayesmeta.transfer.prior import TransferLearner

__all__ = [
    "CheckpointError",
    "build_learner",
    "load_learner",
    "save_learner",
    "tensor_checksum",
]

FORMAT = "bayesmeta-checkpoint-1"
register(TransferLearner)  # transfer/ sits above learners/: its learners join here
register(BayesianLastLayer)

#: What :func:`save_learner` writes and :func:`load_learner` returns.
Learner = MetaLearner | TransferLearner | BayesianLastLayer


def build_learner(config: dict[str, Any], *, device: str | torch.device = "cpu") -> Learner:
    """Rebuild a learner (with fresh weights) from its ``config()`` dictionary, on ``device``."""
    cfg = dict(config)
    cls = learner_class(cfg.pop("learner", None))
    # Checkpoints written before a keyword's rename keep loading, without a warning:
    # the user did not write the old name, the file did.
    for old, new in getattr(cls, "renamed_keywords", {}).items():
        if old in cfg:
            cfg.setdefault(new, cfg.pop(old))
    if cfg.get("prior") == "custom":
        raise CheckpointError(
            "the checkpoint's learner used a custom prior class, which a config cannot rebuild; "
            "build the learner yourself and call load_state_dict"
        )
    if cfg.get("likelihood") == "custom":
        raise CheckpointError(
            "the checkpoint's learner used a custom Likelihood object, which a config cannot "
            "rebuild; build the learner yourself and call load_state_dict"
        )
    try:
        net = build_net(cfg.pop("net", None)).to(device)
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    from_config = getattr(cls, "from_config", None)
    if from_config is not None:  # a learner built around its network (BayesianLastLayer)
        built: Learner = from_config(net, config)
        return built
    learner: Learner = cls(net, **cfg)
    return learner


def save_learner(learner: Learner, path: str | Path) -> Path:
    """Write ``learner``'s state and config to ``path`` (a ``.safetensors`` file).

    ``learner`` is any meta-learner or a :class:`~bayesmeta.TransferLearner`
    (its source-centred prior and any scales learned by ``fit_prior``).

    Returns
    -------
    Path
        The written file.

    """
    if not isinstance(learner, MetaLearner | TransferLearner | BayesianLastLayer):
        raise TypeError(
            "learner must be a bayesmeta learner (a MetaLearner, a TransferLearner or a "
            f"BayesianLastLayer), got {type(learner).__name__}"
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


def load_learner(path: str | Path, *, map_location: str | torch.device = "cpu") -> Learner:
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
    learner = build_learner(json.loads(meta["config"]), device=map_location)
    try:
        learner.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not match its own config: {err}") from err
    return learner
