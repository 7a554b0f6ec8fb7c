"""Training checkpoints: everything needed to resume ``meta_fit`` exactly where it stopped.

One safetensors file holds the learner's state, the optimiser's state, torch's
global random state and the task source's generator state, and the history so
far; the JSON header holds the learner's config, the optimiser's settings, the
iteration and a SHA-256 checksum of the tensors. No pickle is involved. Files
are written to a temporary name and renamed, so an interruption mid-write
leaves the previous checkpoint intact. A resumed run draws the same tasks and
the same noise as an uninterrupted one with the same seed, and so ends with
the same parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.errors import CheckpointError
from bayesmeta.training.distributed import is_distributed
from bayesmeta.training.loop import History

__all__ = [
    "TRAINING_FORMAT",
    "Trainable",
    "load_training_state",
    "resume",
    "save_training_state",
    "tensor_checksum",
]

TRAINING_FORMAT = "bayesmeta-training-2"


class Trainable(Protocol):
    """What a training checkpoint reads from and restores into a learner.

    Every :class:`~bayesmeta.learners.base.MetaLearner` is one; naming the parts here
    keeps the resume state below the learners that use it.
    """

    def state_dict(self) -> dict[str, Any]:
        """The learner's tensors by name."""
        ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any:
        """Restore the tensors of :meth:`state_dict`."""
        ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers whose state is saved, by name."""
        ...

    def config(self) -> dict[str, Any]:
        """The learner's JSON-able settings (kind and network compared on resume)."""
        ...


def tensor_checksum(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_training_state(
    path: str | Path, learner: Trainable, history: History, source: object
) -> Path:
    """Write a training checkpoint of ``learner`` after ``history.iterations`` iterations.

    Parameters
    ----------
    path
        The ``.safetensors`` file (replaced atomically).
    learner
        The learner being meta-trained.
    history
        What ``meta_fit`` recorded so far.
    source
        The task source; its ``generator`` state is saved when it has one.

    Returns
    -------
    Path
        The written file.

    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in learner.state_dict().items()}
    groups: dict[str, Any] = {}
    scalars: dict[str, dict[str, dict[str, Any]]] = {}
    for name, optimizer in learner.optimizers().items():
        opt = optimizer.state_dict()
        groups[name] = opt["param_groups"]
        for index, state in opt["state"].items():
            for key, value in state.items():
                if isinstance(value, Tensor):
                    tensors[f"optim/{name}/{index}/{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(name, {}).setdefault(str(index), {})[key] = value
    tensors["rng/torch"] = torch.get_rng_state()
    generator = getattr(source, "generator", None)
    if isinstance(generator, torch.Generator):
        tensors["rng/source"] = generator.get_state()
    tensors["history/loss"] = torch.tensor(history.loss, dtype=torch.float64)
    meta = {
        "format": TRAINING_FORMAT,
        "config": json.dumps(learner.config()),
        "param_groups": json.dumps(groups),
        "optim_scalars": json.dumps(scalars),
        "iterations": str(history.iterations),
        "wall_time_s": repr(history.wall_time_s),
        "extra": json.dumps(history.extra),
        "sha256": tensor_checksum(tensors),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_training_state(path: str | Path, learner: Trainable, source: object) -> History:
    """Restore a training checkpoint into ``learner`` (and ``source``); return its history.

    Raises
    ------
    CheckpointError
        If the file is unreadable, truncated or corrupted (checksum), is not a
        training checkpoint, or was written by a different learner or
        architecture (the configs are compared and the differences named).

    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err
    if meta.get("format") != TRAINING_FORMAT:
        raise CheckpointError(f"{path} is not a bayesmeta training checkpoint")
    if tensor_checksum(tensors) != meta.get("sha256"):
        raise CheckpointError(f"{path} is corrupted: its tensors do not match their checksum")
    saved, current = json.loads(meta["config"]), learner.config()
    model = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    # The learner's kind and network, and every tensor's shape (config values such as a
    # learned prior scale change with training and are not compared).
    keys = [k for k in ("learner", "net") if saved.get(k) != current.get(k)]
    problems = [f"{k}: {saved.get(k)!r} in the checkpoint, {current.get(k)!r} here" for k in keys]
    # Buffers still empty here take their shape from the data (standardisation maps, the
    # calibrated noise): only their names must match.
    own = {k: tuple(v.shape) for k, v in learner.state_dict().items()}
    saved_shapes = {k: (() if own.get(k) == (0,) else tuple(v.shape)) for k, v in model.items()}
    own = {k: (() if shape == (0,) else shape) for k, shape in own.items()}
    if not problems and saved_shapes != own:
        problems.append("its tensors' names or shapes differ from this learner's")
    if problems:
        raise CheckpointError(
            f"{path} was written by a different learner or architecture ({'; '.join(problems)}); "
            "resume with the learner that wrote it, or start from a fresh checkpoint path"
        )
    learner.load_state_dict(model)
    groups, scalars = json.loads(meta["param_groups"]), json.loads(meta["optim_scalars"])
    for name, optimizer in learner.optimizers().items():
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith(f"optim/{name}/"):
                _, _, index, field = key.split("/", 3)
                state.setdefault(int(index), {})[field] = value  # load_state_dict moves it
        for index, values in scalars.get(name, {}).items():
            state.setdefault(int(index), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": groups[name]})
    torch.set_rng_state(tensors["rng/torch"])
    generator = getattr(source, "generator", None)
    if "rng/source" in tensors and isinstance(generator, torch.Generator):
        generator.set_state(tensors["rng/source"])
    return History(
        loss=tensors["history/loss"].tolist(),
        wall_time_s=float(meta["wall_time_s"]),
        iterations=int(meta["iterations"]),
        extra={k: list(v) for k, v in json.loads(meta["extra"]).items()},
    )


def resume(
    checkpoint: str | Path, learner: Trainable, source: object, iterations: int, every: int
) -> tuple[History | None, Callable[[History], None]]:
    """What ``meta_fit`` needs to checkpoint: the history to resume (if any) and the writer.

    Loads ``checkpoint`` into ``learner`` and ``source`` when it exists, and
    returns the hook that writes it every ``every`` iterations and at
    ``iterations`` (on rank 0 only, when distributed).
    """
    path = Path(checkpoint)
    every = check_count("checkpoint_every", every, minimum=1)
    history = load_training_state(path, learner, source) if path.exists() else None

    def after_step(hist: History) -> None:
        due = hist.iterations % every == 0 or hist.iterations == iterations
        if due and (not is_distributed() or dist.get_rank() == 0):
            save_training_state(path, learner, hist, source)

    return history, after_step
