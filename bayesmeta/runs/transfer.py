"""A transfer run: a prior centred on a source network, fitted on the meta-training tasks.

``bayesmeta run --learner transfer --source SOURCE`` reads the source network from
``SOURCE``, which is

- a run folder (its ``model.safetensors``) or a checkpoint written by
  :func:`~bayesmeta.io.save_learner`: the learner's network, i.e. the meta-learned
  initialisation of MAML or Reptile, or the prior mean of Bayesian MAML (whose prior is
  tied to the network's weights);
- any other ``.safetensors`` file: a network ``state_dict``, loaded into the run's MLP
  (``hidden`` widths, as many inputs as the data have).

The :class:`~bayesmeta.TransferLearner` then learns its prior scales and noise scale on
``train_tasks`` meta-training tasks, every point of each (``fit_prior``, ``iterations``
Adam steps), calibrates the noise its predictions use on meta-training tasks split as the
held-out ones are (``fit_noise_scale``) and adapts to each held-out task with
``adapt_steps`` steps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from bayesmeta.errors import BayesmetaError
from bayesmeta.io.checkpoint import FORMAT, load_learner
from bayesmeta.nets.mlp import MLP
from bayesmeta.runs.data import run_source
from bayesmeta.tasks.source import TaskSource
from bayesmeta.tasks.tables import GroupedTasks
from bayesmeta.training.loop import History
from bayesmeta.transfer.prior import TransferLearner

__all__ = ["NOISE_TASKS", "SourceError", "build_transfer", "fit_transfer_run", "source_network"]

#: Meta-training tasks the predictive noise is calibrated on.
NOISE_TASKS = 200


class SourceError(BayesmetaError, ValueError):
    """The source of a transfer run is missing, unreadable or does not fit the run's data."""


def source_network(config: Any) -> nn.Module:
    """The source network named by ``config.source`` (a run folder or a ``.safetensors``).

    Parameters
    ----------
    config
        A :class:`~bayesmeta.runs.config.RunConfig` of ``learner = "transfer"``.

    Raises
    ------
    SourceError
        If ``source`` is not set, names nothing readable, holds a learner that
        standardises its data or a network that is not an MLP, or its network
        takes another number of inputs than the data have.

    """
    if config.source is None:
        raise SourceError(
            "learner 'transfer' needs source: a run folder (from `bayesmeta run`) or a "
            ".safetensors file holding the source network (--source on the command line)"
        )
    path = Path(config.source)
    if path.is_dir():
        if not (path / "model.safetensors").is_file():
            raise SourceError(
                f"source {path} is a folder without model.safetensors: give a finished run "
                "folder (written by `bayesmeta run`) or a .safetensors file"
            )
        path = path / "model.safetensors"
    if not path.is_file():
        raise SourceError(f"source {path} does not exist: give a run folder or a .safetensors file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise SourceError(f"source {path} is not a readable safetensors file ({err})") from err
    net = _from_checkpoint(path) if meta.get("format") == FORMAT else _from_state(path, config)
    inputs = len(config.x) if config.data == "table" else 1
    if not isinstance(net, MLP) or net.in_features != inputs or net.out_features != 1:
        shape = tuple(net.sizes) if isinstance(net, MLP) else type(net).__name__
        raise SourceError(
            f"the source network in {path} ({shape}) does not fit data {config.data!r}: a "
            f"transfer run needs an MLP with {inputs} input(s) and 1 output"
        )
    return net


def _from_checkpoint(path: Path) -> nn.Module:
    """The network of the learner saved in ``path``."""
    learner = load_learner(path)
    units = getattr(learner, "units", None)
    if units is not None and units.fitted:
        raise SourceError(
            f"the learner in {path} standardised its data (standardize), so its network works "
            "in other units than the data's; train the source with standardize = false"
        )
    net = getattr(learner, "net", None)
    if not isinstance(net, nn.Module):
        raise SourceError(f"the learner in {path} has no network to transfer")
    return net


def _from_state(path: Path, config: Any) -> nn.Module:
    """An MLP of the run's widths with the ``state_dict`` saved in ``path``."""
    inputs = len(config.x) if config.data == "table" else 1
    net = MLP((inputs, *config.hidden, 1))
    state = load_file(str(path))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise SourceError(
            f"the network state in {path} does not fit the run's MLP {tuple(net.sizes)} "
            f"(hidden = {list(config.hidden)}): {str(err).splitlines()[0]} ..."
        ) from err
    return net


def build_transfer(config: Any) -> TransferLearner:
    """A :class:`~bayesmeta.TransferLearner` with its prior centred on the source network.

    ``prior_scale`` (if set) is where empirical Bayes starts the prior scales,
    ``adapt_steps`` the Adam steps of each adaptation, ``seed`` the Monte Carlo noise.
    """
    kwargs: dict[str, Any] = {"steps": config.adapt_steps, "seed": config.seed}
    if config.prior_scale is not None:
        kwargs["init_prior_scale"] = config.prior_scale
    return TransferLearner(source_network(config), **kwargs)


def fit_transfer_run(
    learner: TransferLearner, config: Any, train: TaskSource, seed: int
) -> History:
    """Fit the prior on meta-training tasks, then the predictive noise; the fit's history.

    Parameters
    ----------
    learner
        The run's transfer learner.
    config
        The run's :class:`~bayesmeta.runs.config.RunConfig`.
    train
        The meta-training tasks: ``train_tasks`` of them (each table group at most
        once) with all their points give the prior scales, by ``iterations`` steps
        (none: the prior keeps ``prior_scale``, chosen per task).
    seed
        Seed of the :data:`NOISE_TASKS` meta-training tasks, split as the held-out
        ones, that calibrate the predictive noise.

    Returns
    -------
    History
        The prior fit's objective per step as ``loss``.

    """
    start = time.perf_counter()
    history = History()
    if config.meta_iterations > 0:
        count = config.train_tasks
        if isinstance(train, GroupedTasks):
            count = min(count, len(train))
        batch = train.sample(count)
        x = torch.cat([batch.support_x, batch.query_x], dim=1)
        y = torch.cat([batch.support_y, batch.query_y], dim=1)
        learner.fit_prior(x, y, steps=config.meta_iterations)
        assert learner.last_fit_ is not None
        history.loss = [float(v) for v in learner.last_fit_.losses]
        history.iterations = len(history.loss)
    learner.fit_noise_scale(run_source(config, "train", seed, None).sample(NOISE_TASKS))
    history.wall_time_s = time.perf_counter() - start
    return history
