"""The one seeded, chunked prediction loop behind evaluation and the run report.

:func:`predict_chunks` adapts a learner to held-out tasks a chunk at a time and
predicts their query sets. :func:`~bayesmeta.scoring.evaluation.evaluate`,
a run's held-out evaluation (:func:`~bayesmeta.runs.experiment.evaluate_held_out`)
and the run report (:func:`~bayesmeta.diagnostics.report.diagnose_run`) all read
their predictions from it, so that with the same tasks, chunk size and seed they
score the very same posterior draws.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from bayesmeta._checks import check_count
from bayesmeta._progress import show_progress
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction
from bayesmeta.tasks.task import TaskBatch

__all__ = ["Adaptable", "predict_chunks"]


class _Predictor(Protocol):
    def predict(self, query_x: Tensor) -> Prediction | ClassPrediction: ...


class Adaptable(Protocol):
    """Anything with ``adapt(support_x, support_y) -> predictor`` (every learner)."""

    def adapt(self, support_x: Tensor, support_y: Tensor) -> _Predictor:
        """Adapt to tasks given their support sets."""
        ...


def predict_chunks(
    learner: Adaptable,
    batch: TaskBatch,
    *,
    chunk_size: int = 100,
    seed: int | None = None,
    progress: bool | None = None,
    desc: str = "evaluate",
) -> Iterator[tuple[TaskBatch, Prediction | ClassPrediction, Tensor]]:
    """Adapt to ``batch`` a chunk of tasks at a time and predict each chunk's query set.

    Parameters
    ----------
    learner
        Any learner with ``adapt``.
    batch
        The tasks ``[T, ...]``.
    chunk_size
        Tasks adapted at once (bounds memory). Posterior draws depend on the
        chunks, so compare scores made with the same chunk size.
    seed
        Seeds torch's global generator for the whole loop, inside a forked
        random state: the same learner on the same tasks gives the same
        draws, and the caller's random state is left as it was. ``None``:
        draw from the global generator as it stands.
    progress
        Progress bar over the tasks (``None``: only when stderr is a terminal).
    desc
        The progress bar's label.

    Yields
    ------
    tuple of (TaskBatch, Prediction or ClassPrediction, Tensor)
        Each chunk, the learner's prediction of its query set, and its query
        targets on the prediction's device. Work done between two items (scoring
        the prediction) runs inside the seeded random state, so consume the
        loop to its end before drawing anything else.

    """
    check_count("chunk_size", chunk_size, minimum=1)
    bar = tqdm(total=len(batch), desc=desc, disable=not show_progress(progress), leave=False)
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        if seed is not None:
            stack.enter_context(torch.random.fork_rng(devices=[]))
            torch.manual_seed(seed)
        for start in range(0, len(batch), chunk_size):
            chunk = batch.select(slice(start, start + chunk_size))
            pred = learner.adapt(chunk.support_x, chunk.support_y).predict(chunk.query_x)
            bar.update(len(chunk))
            yield chunk, pred, chunk.query_y.to(pred.mean.device)
