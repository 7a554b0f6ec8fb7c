"""The meta-training loop shared by all learners: progress, history, NaN stops."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from bayesmeta._checks import check_count
from bayesmeta._progress import show_progress
from bayesmeta.errors import NonFiniteLossError
from bayesmeta.tasks.source import TaskSource
from bayesmeta.tasks.task import TaskBatch

__all__ = ["History", "check_finite", "run_meta_fit"]


@dataclass
class History:
    """What :meth:`meta_fit` recorded.

    Attributes
    ----------
    loss : list of float
        The meta-training loss of every iteration, in order.
    wall_time_s : float
        Wall-clock seconds spent in the loop (sampling, steps, callbacks).
    iterations : int
        Number of completed meta-iterations.
    extra : dict
        Values returned by the callback, keyed by name, one list each.

    """

    loss: list[float] = field(default_factory=list)
    wall_time_s: float = 0.0
    iterations: int = 0
    extra: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "loss": list(self.loss),
            "wall_time_s": self.wall_time_s,
            "iterations": self.iterations,
            "extra": {k: list(v) for k, v in self.extra.items()},
        }


def check_finite(loss: float, what: str, iteration: int | None = None) -> float:
    """Raise :class:`NonFiniteLossError` if ``loss`` is NaN or infinite."""
    if not math.isfinite(loss):
        where = "" if iteration is None else f" at iteration {iteration}"
        raise NonFiniteLossError(
            f"{what} became {loss}{where}; parameters were not updated with it. "
            "Lower the learning rates, check the data for extreme values, or set max_grad_norm"
        )
    return loss


def run_meta_fit(
    step: Callable[[TaskBatch], float],
    source: TaskSource,
    iterations: int,
    meta_batch_size: int,
    *,
    progress: bool | None = None,
    description: str = "meta-fit",
    callback: Callable[[int, float], dict[str, float] | None] | None = None,
    history: History | None = None,
    after_step: Callable[[History], None] | None = None,
) -> History:
    """Call ``step(source.sample(meta_batch_size))`` until ``iterations`` are done.

    Parameters
    ----------
    step
        One meta-update; returns the loss as a float.
    source
        Where tasks come from.
    iterations
        Number of meta-iterations.
    meta_batch_size
        Tasks per meta-iteration ``T``.
    progress
        Show a progress bar; ``None`` shows one only when stderr is a terminal.
    description
        Label of the progress bar.
    callback
        Called as ``callback(iteration, loss)`` after each step; a returned
        dict of floats is appended to ``History.extra``.
    history
        The history of an interrupted run to continue: its ``iterations``
        are counted as done (resuming from a training checkpoint).
    after_step
        Called with the history after each step and its callback (writes
        training checkpoints).

    Returns
    -------
    History
        The recorded losses and timing.

    """
    check_count("iterations", iterations, minimum=0)
    check_count("meta_batch_size", meta_batch_size, minimum=1)
    if not callable(getattr(source, "sample", None)):
        raise TypeError(
            f"source must have a sample(num_tasks) method returning a TaskBatch, "
            f"got {type(source).__name__}"
        )
    show = show_progress(progress)
    history = History() if history is None else history
    done, previous = history.iterations, history.wall_time_s
    start = time.perf_counter()
    bar = tqdm(
        total=iterations, initial=done, desc=description, disable=not show, dynamic_ncols=True
    )
    smoothed = math.nan
    try:
        for it in range(done, iterations):
            batch = source.sample(meta_batch_size)
            loss = step(batch)
            history.loss.append(loss)
            history.iterations = it + 1
            smoothed = loss if math.isnan(smoothed) else 0.98 * smoothed + 0.02 * loss
            if callback is not None:
                extra = callback(it, loss)
                for key, value in (extra or {}).items():
                    history.extra.setdefault(key, []).append(float(value))
            bar.update(1)
            if show and (it % 25 == 0 or it == iterations - 1):
                bar.set_postfix(loss=f"{smoothed:.4g}", refresh=False)
            if after_step is not None:
                history.wall_time_s = previous + time.perf_counter() - start
                after_step(history)
    except NonFiniteLossError as err:
        err.history = history  # what was recorded before the stop
        raise
    finally:
        bar.close()
        history.wall_time_s = previous + time.perf_counter() - start
    return history
