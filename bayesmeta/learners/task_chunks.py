"""Backpropagate a meta-batch's tasks a few at a time: the same meta-gradient, less memory.

The outer objective of the gradient-based learners is a mean over the meta-batch's
``T`` tasks, ``L = (1/T) sum_t L_t``, and each task's term depends on that task's data
only (its inner loop adapts it alone). So the meta-gradient is the sum over chunks of
tasks of ``(|chunk| / T) grad mean_{t in chunk} L_t``: backpropagating chunk by chunk
into ``.grad`` (gradient accumulation) gives it exactly, while only one chunk's inner
graph and query activations are held at once. Any per-task weighting inside a chunk
(the particle weights of :mod:`bayesmeta.learners.particle_chunks`) composes with it.

Random draws (reparameterisation noise) are made per chunk, so under one seed the
chunked route draws other (equally distributed) noise than the whole batch would.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor

from bayesmeta._checks import check_count, fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.tasks.task import TaskBatch

__all__ = ["check_task_chunk", "chunked_task_backward", "weighted_backward"]


def check_task_chunk(value: int | None) -> int | None:
    """Return ``value`` if it is ``None`` or an integer ``>= 1``; raise otherwise.

    Raises
    ------
    TypeError, ValueError
        If ``task_chunk`` is not an integer, or is below one (the message names it).

    """
    if value is not None:
        check_count("task_chunk", value, minimum=1)
    return value


def weighted_backward(loss: Tensor, weight: float = 1.0) -> float:
    """Add ``weight`` times the gradient of ``loss`` to ``.grad``; return the loss's value.

    Parameters
    ----------
    loss
        A scalar ``[]`` with a graph to the parameters.
    weight
        The factor on the gradient (a chunk of tasks' share of the meta-batch).

    Returns
    -------
    float
        The loss's value. A non-finite one is returned without any backward pass, so
        ``.grad`` keeps only what earlier chunks put there (the caller refuses the step).

    Raises
    ------
    ShapeError
        If ``loss`` is not a scalar.

    """
    if loss.dim() != 0:
        raise ShapeError(f"loss must be a scalar [], got {fmt_shape(loss.shape)}")
    value = float(loss.detach())
    if math.isfinite(value):
        (loss if weight == 1.0 else loss * weight).backward()
    return value


def chunked_task_backward(
    batch: TaskBatch,
    chunk: int | None,
    backward: Callable[[TaskBatch, float], float],
) -> float:
    """Accumulate the meta-gradient of a mean over tasks in ``.grad``, ``chunk`` tasks at a time.

    Parameters
    ----------
    batch
        The meta-batch of ``T`` tasks.
    chunk
        Tasks per backward pass (``None`` or ``>= T``: all at once).
    backward
        ``backward(sub, weight)`` backpropagates ``weight`` times the mean loss over the
        tasks of ``sub`` (a :class:`~bayesmeta.tasks.TaskBatch` of ``T'`` tasks) into
        ``.grad``, adding to what is there, and returns that mean loss's value (without
        the weight). A non-finite value must be returned before any backward.

    Returns
    -------
    float
        The mean loss over all ``T`` tasks. If a chunk's loss is not finite, that value
        is returned at once and ``.grad`` may hold earlier chunks' terms: the caller
        refuses the step (as :meth:`~bayesmeta.learners.MetaLearner.meta_step` does).

    Raises
    ------
    TypeError, ValueError
        If ``chunk`` is not ``None`` or an integer ``>= 1``.

    """
    check_task_chunk(chunk)
    t = len(batch)
    if chunk is None or chunk >= t:
        return backward(batch, 1.0)
    total = 0.0
    for start in range(0, t, chunk):
        sub = batch.select(slice(start, min(start + chunk, t)))
        weight = len(sub) / t
        value = backward(sub, weight)
        if not math.isfinite(value):
            return value
        total += weight * value
    return total
