"""Built-in regression task families: :class:`Sinusoid` and :class:`SinusoidOrLine`."""

from __future__ import annotations

import math

import torch

from bayesmeta._checks import check_count
from bayesmeta.tasks.source import SeededSource, check_noise_std
from bayesmeta.tasks.task import TaskBatch

__all__ = ["Sinusoid", "SinusoidOrLine"]


def _check_range(name: str, value: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from err
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"{name} must be a finite (low, high) pair with low <= high, got {value}")
    return low, high


class Sinusoid(SeededSource):
    """Sinusoid regression tasks of Finn et al. (2017).

    Each task is ``y = A sin(x - phi) (+ noise)`` with amplitude
    ``A ~ U[0.1, 5.0]``, phase ``phi ~ U[0, pi]`` and inputs ``x ~ U[-5, 5]``.

    Parameters
    ----------
    k_support
        Support points per task (the "shots"), ``>= 1``.
    k_query
        Query points per task, ``>= 0``.
    amplitude, phase, x_range
        ``(low, high)`` ranges of the uniform distributions.
    noise_std
        Standard deviation of Gaussian observation noise (0: noiseless, as in
        the paper).
    seed
        Seed of the source's generator.
    dtype
        Floating dtype of the tensors.

    Examples
    --------
    >>> batch = Sinusoid(k_support=5, k_query=10, seed=0).sample(25)
    >>> tuple(batch.support_x.shape), tuple(batch.query_y.shape)
    ((25, 5, 1), (25, 10, 1))

    """

    def __init__(
        self,
        k_support: int = 5,
        k_query: int = 10,
        *,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        noise_std: float = 0.0,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(seed=seed, dtype=dtype)
        self.k_support = check_count("k_support", k_support, minimum=1)
        self.k_query = check_count("k_query", k_query, minimum=0)
        self.amplitude = _check_range("amplitude", amplitude)
        self.phase = _check_range("phase", phase)
        self.x_range = _check_range("x_range", x_range)
        self.noise_std = check_noise_std(noise_std)

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` sinusoid tasks.

        Returns
        -------
        TaskBatch
            ``support_x [T, k_support, 1]``, ``query_x [T, k_query, 1]`` and
            targets of the same shapes; ``info`` holds ``amplitude`` and
            ``phase`` ``[T]``.

        """
        t = check_count("num_tasks", num_tasks, minimum=1)
        g = self._generator(generator)
        amp = self.uniform((t,), *self.amplitude, g)
        phase = self.uniform((t,), *self.phase, g)
        n = self.k_support + self.k_query
        x = self.uniform((t, n, 1), *self.x_range, g)
        y = amp[:, None, None] * torch.sin(x - phase[:, None, None])
        if self.noise_std > 0:
            y = y + self.noise_std * torch.randn(y.shape, generator=g, dtype=self.dtype)
        k = self.k_support
        return TaskBatch(
            x[:, :k], y[:, :k], x[:, k:], y[:, k:], info={"amplitude": amp, "phase": phase}
        )

    def __repr__(self) -> str:
        return (
            f"Sinusoid(k_support={self.k_support}, k_query={self.k_query}, "
            f"noise_std={self.noise_std}, seed={self.seed})"
        )


class SinusoidOrLine(SeededSource):
    """The ambiguous sinusoid-or-line family of PLATIPUS and Bayesian MAML.

    With probability ``p_sine`` a task is a sinusoid ``A sin(x - phi)``
    (``A ~ U[0.1, 5]``, ``phi ~ U[0, pi]``), otherwise a line ``a x + b``
    (``a, b ~ U[-3, 3]``); targets carry Gaussian noise of standard deviation
    ``noise_std`` (0.3 by default). From a few points the two kinds are often
    indistinguishable: a point estimate must commit to one, a posterior need not.

    Parameters
    ----------
    k_support, k_query
        Support and query points per task.
    p_sine
        Probability that a task is a sinusoid.
    noise_std
        Observation noise standard deviation.
    slope, intercept, amplitude, phase, x_range
        ``(low, high)`` ranges of the uniform distributions.
    seed, dtype
        As for :class:`Sinusoid`.

    """

    def __init__(
        self,
        k_support: int = 5,
        k_query: int = 10,
        *,
        p_sine: float = 0.5,
        noise_std: float = 0.3,
        slope: tuple[float, float] = (-3.0, 3.0),
        intercept: tuple[float, float] = (-3.0, 3.0),
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        seed: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(seed=seed, dtype=dtype)
        self.k_support = check_count("k_support", k_support, minimum=1)
        self.k_query = check_count("k_query", k_query, minimum=0)
        if not 0.0 <= p_sine <= 1.0:
            raise ValueError(f"p_sine must lie in [0, 1], got {p_sine}")
        self.p_sine = float(p_sine)
        self.noise_std = check_noise_std(noise_std)
        self.slope = _check_range("slope", slope)
        self.intercept = _check_range("intercept", intercept)
        self.amplitude = _check_range("amplitude", amplitude)
        self.phase = _check_range("phase", phase)
        self.x_range = _check_range("x_range", x_range)

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` tasks.

        Returns
        -------
        TaskBatch
            Shapes as for :class:`Sinusoid`; ``info`` holds ``is_sine``
            (1.0 or 0.0), ``amplitude``, ``phase``, ``slope`` and ``intercept``,
            each ``[T]`` (the parameters of the other kind are drawn but unused).

        """
        t = check_count("num_tasks", num_tasks, minimum=1)
        g = self._generator(generator)
        is_sine = (torch.rand((t,), generator=g) < self.p_sine).to(self.dtype)
        amp = self.uniform((t,), *self.amplitude, g)
        phase = self.uniform((t,), *self.phase, g)
        slope = self.uniform((t,), *self.slope, g)
        intercept = self.uniform((t,), *self.intercept, g)
        n = self.k_support + self.k_query
        x = self.uniform((t, n, 1), *self.x_range, g)
        sine = amp[:, None, None] * torch.sin(x - phase[:, None, None])
        line = slope[:, None, None] * x + intercept[:, None, None]
        y = torch.where(is_sine[:, None, None] > 0, sine, line)
        if self.noise_std > 0:
            y = y + self.noise_std * torch.randn(y.shape, generator=g, dtype=self.dtype)
        k = self.k_support
        info = {
            "is_sine": is_sine,
            "amplitude": amp,
            "phase": phase,
            "slope": slope,
            "intercept": intercept,
        }
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:], info=info)

    def __repr__(self) -> str:
        return (
            f"SinusoidOrLine(k_support={self.k_support}, k_query={self.k_query}, "
            f"p_sine={self.p_sine}, noise_std={self.noise_std}, seed={self.seed})"
        )
