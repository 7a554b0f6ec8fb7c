"""The synthetic meta-regression environments of PACOH (Rothfuss et al., 2021).

:class:`PacohSinusoid` and :class:`PacohCauchy` reproduce the generative
processes of the "sin" and "cauchy" environments of *PACOH: Bayes-Optimal
Meta-Learning with PAC-Guarantees* as the authors' code defines them
(``SinusoidDataset`` / ``CauchyDataset`` in ``experiments/data_sim.py`` of
``jonasrothfuss/meta_learning_pacoh``; ``SinusoidMetaDataset`` /
``CauchyMetaDataset`` in ``pacoh_nn/datasets/regression_datasets.py`` of
``jonasrothfuss/pacoh_nn``, which are identical).

Each class also gives the paper's protocol: ``meta_train_tasks(seed)`` draws
the small fixed meta-training set (20 tasks of 5 points for the sinusoid, 20
tasks of 20 points for Cauchy), and ``test_source(seed)`` /
``meta_test_tasks(seed)`` the meta-test tasks (5 or 20 context points, 200
target points). The three draw from independent random streams derived from
``seed``, so the test tasks never repeat the meta-training tasks.
"""

from __future__ import annotations

import hashlib
import math
from typing import ClassVar, Self

import torch
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.tasks.source import SeededSource, check_noise_std, check_seed
from bayesmeta.tasks.task import TaskBatch

__all__ = ["PacohCauchy", "PacohSinusoid"]

_MAX_JITTER_TRIES = 6


def _stream_seed(seed: int | None, env: str, stream: str) -> int | None:
    """A seed for one named random stream of an environment, derived from ``seed``."""
    seed = check_seed(seed)
    if seed is None:
        return None
    digest = hashlib.sha256(f"bayesmeta.pacoh/{env}/{stream}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class _PacohSource(SeededSource):
    """Shared protocol helpers; subclasses set the class constants and ``sample``."""

    #: Number of meta-training tasks in the paper's protocol.
    META_TRAIN_TASKS: ClassVar[int]
    #: Points per meta-training task.
    META_TRAIN_POINTS: ClassVar[int]
    #: Context (support) points per meta-test task.
    TEST_CONTEXT_POINTS: ClassVar[int]
    #: Target (query) points per meta-test task.
    TEST_TARGET_POINTS: ClassVar[int] = 200
    #: Meta-test tasks of the authors' PACOH-GP ``provide_data`` (PACOH-NN's uses 20).
    TEST_TASKS: ClassVar[int] = 200
    #: Observation-noise standard deviation of the paper.
    NOISE_STD: ClassVar[float]
    _ENV: ClassVar[str]

    def __init__(
        self,
        k_support: int,
        k_query: int,
        *,
        noise_std: float | None = None,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(seed=seed, dtype=dtype)
        self.k_support = check_count("k_support", k_support, minimum=1)
        self.k_query = check_count("k_query", k_query, minimum=0)
        self.noise_std = check_noise_std(self.NOISE_STD if noise_std is None else noise_std)

    @classmethod
    def meta_train_tasks(
        cls,
        seed: int | None = None,
        *,
        num_tasks: int | None = None,
        k_query: int = 0,
        dtype: torch.dtype | None = None,
    ) -> TaskBatch:
        """Draw the paper's meta-training set.

        Parameters
        ----------
        seed
            Seed of the meta-training stream (independent of the test stream
            of :meth:`test_source` with the same seed).
        num_tasks
            Number of tasks; default :attr:`META_TRAIN_TASKS`.
        k_query
            How many of each task's :attr:`META_TRAIN_POINTS` points go to the
            query set (default 0: all points are support, as PACOH meta-trains
            on whole data sets; use ``k_query > 0`` for learners that need a
            support/query split). ``0 <= k_query < META_TRAIN_POINTS``.
        dtype
            Floating dtype of the tensors.

        Returns
        -------
        TaskBatch
            ``support_x [T, META_TRAIN_POINTS - k_query, D]``,
            ``query_x [T, k_query, D]``; wrap it in
            :class:`~bayesmeta.tasks.TaskPool` to meta-train on this fixed set.

        """
        t = check_count(
            "num_tasks", cls.META_TRAIN_TASKS if num_tasks is None else num_tasks, minimum=1
        )
        k_query = check_count("k_query", k_query, minimum=0)
        if k_query >= cls.META_TRAIN_POINTS:
            raise ValueError(
                f"k_query must be < META_TRAIN_POINTS = {cls.META_TRAIN_POINTS}, got {k_query}"
            )
        source = cls(
            cls.META_TRAIN_POINTS - k_query,
            k_query,
            seed=_stream_seed(seed, cls._ENV, "meta-train"),
            dtype=dtype,
        )
        return source.sample(t)

    @classmethod
    def test_source(cls, seed: int | None = None, *, dtype: torch.dtype | None = None) -> Self:
        """A source of meta-test tasks with the paper's sizes.

        Each task has :attr:`TEST_CONTEXT_POINTS` support (context) points and
        :attr:`TEST_TARGET_POINTS` query (target) points. Its stream is
        independent of :meth:`meta_train_tasks` with the same ``seed``.
        """
        return cls(
            cls.TEST_CONTEXT_POINTS,
            cls.TEST_TARGET_POINTS,
            seed=_stream_seed(seed, cls._ENV, "meta-test"),
            dtype=dtype,
        )

    @classmethod
    def meta_test_tasks(
        cls,
        seed: int | None = None,
        *,
        num_tasks: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> TaskBatch:
        """Draw ``num_tasks`` (default :attr:`TEST_TASKS`) tasks from :meth:`test_source`."""
        t = check_count("num_tasks", cls.TEST_TASKS if num_tasks is None else num_tasks, minimum=1)
        return cls.test_source(seed, dtype=dtype).sample(t)

    def normal(self, shape: tuple[int, ...], mean: float, std: float, g: torch.Generator) -> Tensor:
        """Draw ``N(mean, std^2)`` values of ``shape`` from ``g``."""
        return torch.randn(shape, generator=g, dtype=self.dtype) * std + mean

    def _noise(self, shape: tuple[int, ...], g: torch.Generator) -> Tensor:
        return self.noise_std * torch.randn(shape, generator=g, dtype=self.dtype)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(k_support={self.k_support}, k_query={self.k_query}, "
            f"noise_std={self.noise_std}, seed={self.seed})"
        )


class PacohSinusoid(_PacohSource):
    """The sinusoid environment of PACOH.

    Each task is

    ``y = s x + a sin(1.5 (x - x0)) + y0 + eps``

    with amplitude ``a ~ U[0.7, 1.3]``, slope ``s ~ N(0.5, 0.2^2)``, vertical
    shift ``y0 ~ N(5, 0.1^2)``, horizontal shift ``x0 ~ N(0, 0.1^2)``, inputs
    ``x ~ U[-5, 5]`` and observation noise ``eps ~ N(0, 0.1^2)``; the second
    parameter of each normal is a *standard deviation* (``numpy``'s
    ``scale=``), and the period factor is fixed at 1.5 (the authors'
    ``period_low = period_high = 1.5``). This is the authors' code
    (``SinusoidDataset`` in ``experiments/data_sim.py`` of
    ``jonasrothfuss/meta_learning_pacoh``) exactly, noise included.

    Protocol (the authors' ``provide_data("sin")``): 20 meta-training tasks of
    5 points; meta-test tasks with 5 context and 200 target points.

    Parameters
    ----------
    k_support
        Support points per task, ``>= 1``.
    k_query
        Query points per task, ``>= 0``.
    noise_std
        Standard deviation of the Gaussian observation noise (0.1 in the paper).
    seed
        Seed of the source's generator.
    dtype
        Floating dtype of the tensors.

    Examples
    --------
    >>> batch = PacohSinusoid(k_support=5, k_query=10, seed=0).sample(3)
    >>> tuple(batch.support_x.shape), tuple(batch.query_y.shape)
    ((3, 5, 1), (3, 10, 1))
    >>> PacohSinusoid.meta_train_tasks(seed=0).support_x.shape
    torch.Size([20, 5, 1])

    """

    META_TRAIN_TASKS: ClassVar[int] = 20
    META_TRAIN_POINTS: ClassVar[int] = 5
    TEST_CONTEXT_POINTS: ClassVar[int] = 5
    NOISE_STD: ClassVar[float] = 0.1
    _ENV: ClassVar[str] = "sinusoid"

    #: ``(low, high)`` of the uniform amplitude.
    AMPLITUDE: ClassVar[tuple[float, float]] = (0.7, 1.3)
    #: ``(mean, std)`` of the normal slope.
    SLOPE: ClassVar[tuple[float, float]] = (0.5, 0.2)
    #: ``(mean, std)`` of the normal vertical shift.
    Y_SHIFT: ClassVar[tuple[float, float]] = (5.0, 0.1)
    #: ``(mean, std)`` of the normal horizontal shift.
    X_SHIFT: ClassVar[tuple[float, float]] = (0.0, 0.1)
    #: Fixed angular frequency multiplying ``x - x0``.
    PERIOD: ClassVar[float] = 1.5
    #: ``(low, high)`` of the uniform inputs.
    X_RANGE: ClassVar[tuple[float, float]] = (-5.0, 5.0)

    def __init__(
        self,
        k_support: int = 5,
        k_query: int = 200,
        *,
        noise_std: float = 0.1,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(k_support, k_query, noise_std=noise_std, seed=seed, dtype=dtype)

    @classmethod
    def function(
        cls, x: Tensor, amplitude: Tensor, slope: Tensor, x_shift: Tensor, y_shift: Tensor
    ) -> Tensor:
        """The noiseless task function at ``x`` ``[T, N, 1]`` for parameters ``[T]``."""
        a, s, x0, y0 = (p[:, None, None] for p in (amplitude, slope, x_shift, y_shift))
        return s * x + a * torch.sin(cls.PERIOD * (x - x0)) + y0

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` sinusoid tasks.

        Returns
        -------
        TaskBatch
            ``support_x [T, k_support, 1]``, ``query_x [T, k_query, 1]`` and
            targets of the same shapes; ``info`` holds ``amplitude``,
            ``slope``, ``x_shift`` and ``y_shift``, each ``[T]``.

        """
        t = check_count("num_tasks", num_tasks, minimum=1)
        g = self._generator(generator)
        amplitude = self.uniform((t,), *self.AMPLITUDE, g)
        slope = self.normal((t,), *self.SLOPE, g)
        x_shift = self.normal((t,), *self.X_SHIFT, g)
        y_shift = self.normal((t,), *self.Y_SHIFT, g)
        n = self.k_support + self.k_query
        x = self.uniform((t, n, 1), *self.X_RANGE, g)
        y = self.function(x, amplitude, slope, x_shift, y_shift)
        if self.noise_std > 0:
            y = y + self._noise(y.shape, g)
        k = self.k_support
        info = {"amplitude": amplitude, "slope": slope, "x_shift": x_shift, "y_shift": y_shift}
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:], info=info)


class PacohCauchy(_PacohSource):
    """The 2-D Cauchy environment of PACOH: two Cauchy bumps plus a GP draw.

    Each task's function is a fixed mean plus a Gaussian-process perturbation,

    ``f(x) = 6 c(x; (-1, -1)) + 3 c(x; (2, 2)) + 1 + g(x)``,
    ``c(x; m) = 1 / (pi (1 + ||x - m||^2))``,

    with ``g ~ GP(0, 0.2^2 exp(-||x - x'||^2))``, i.e. an RBF kernel of
    output scale 0.2 and length scale ``sqrt(0.5)`` (the authors' kernel is
    ``exp(-0.5 / l * ||x - x'||^2)`` with their ``l = 0.5``). Targets are
    ``y = f(x) + eps``, ``eps ~ N(0, 0.05^2)``. Each input coordinate is an
    independent normal of standard deviation 2.5 truncated to ``[-3, 2]``
    standard deviations, so ``x`` lies in ``[-7.5, 5]^2``
    (``truncnorm(-3, 2, loc=0, scale=2.5)``).

    As in the authors' code (``CauchyDataset`` in ``experiments/data_sim.py``
    of ``jonasrothfuss/meta_learning_pacoh``), ``g`` is drawn jointly at all
    of a task's points, support and query together (a Cholesky factor of the
    kernel matrix plus ``1e-8`` jitter, in float64), so both sets see one
    consistent function. Only the mean function is shared across tasks; the
    tasks differ by their GP draw.

    Protocol (the authors' ``provide_data("cauchy")``): 20 meta-training tasks
    of 20 points; meta-test tasks with 20 context and 200 target points.

    Parameters
    ----------
    k_support
        Support points per task, ``>= 1``.
    k_query
        Query points per task, ``>= 0``.
    noise_std
        Standard deviation of the Gaussian observation noise (0.05 in the paper).
    seed
        Seed of the source's generator.
    dtype
        Floating dtype of the tensors.

    Examples
    --------
    >>> batch = PacohCauchy(k_support=20, k_query=50, seed=0).sample(3)
    >>> tuple(batch.support_x.shape), tuple(batch.query_y.shape)
    ((3, 20, 2), (3, 50, 1))

    """

    META_TRAIN_TASKS: ClassVar[int] = 20
    META_TRAIN_POINTS: ClassVar[int] = 20
    TEST_CONTEXT_POINTS: ClassVar[int] = 20
    NOISE_STD: ClassVar[float] = 0.05
    _ENV: ClassVar[str] = "cauchy"

    #: Input dimension.
    INPUT_DIM: ClassVar[int] = 2
    #: ``(weight, location)`` of the two Cauchy bumps (location on the diagonal).
    BUMPS: ClassVar[tuple[tuple[float, float], ...]] = ((6.0, -1.0), (3.0, 2.0))
    #: Constant offset of the mean function.
    OFFSET: ClassVar[float] = 1.0
    #: Output standard deviation of the GP perturbation.
    GP_SCALE: ClassVar[float] = 0.2
    #: Length scale of the GP's RBF kernel ``exp(-d^2 / (2 l^2))``.
    GP_LENGTHSCALE: ClassVar[float] = math.sqrt(0.5)
    #: Diagonal jitter added to the kernel matrix before the Cholesky factor.
    GP_JITTER: ClassVar[float] = 1e-8
    #: Standard deviation of the (untruncated) input normal.
    X_SCALE: ClassVar[float] = 2.5
    #: Truncation bounds of the inputs, in standard deviations.
    X_TRUNCATION: ClassVar[tuple[float, float]] = (-3.0, 2.0)

    def __init__(
        self,
        k_support: int = 20,
        k_query: int = 200,
        *,
        noise_std: float = 0.05,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(k_support, k_query, noise_std=noise_std, seed=seed, dtype=dtype)

    @classmethod
    def mean_function(cls, x: Tensor) -> Tensor:
        """The shared mean (the two Cauchy bumps plus offset) at ``x`` ``[..., N, D]``.

        Returns
        -------
        Tensor
            ``[..., N, 1]``.

        """
        out = torch.full_like(x[..., :1], cls.OFFSET)
        for weight, loc in cls.BUMPS:
            sq = (x - loc).pow(2).sum(-1, keepdim=True)
            out = out + weight / (math.pi * (1.0 + sq))
        return out

    @classmethod
    def kernel(cls, a: Tensor, b: Tensor) -> Tensor:
        """GP covariance ``0.2^2 exp(-||a - b||^2)`` of ``[..., N, D]`` and ``[..., M, D]``."""
        sq = (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)
        return cls.GP_SCALE**2 * torch.exp(-0.5 * sq / cls.GP_LENGTHSCALE**2)

    def _inputs(self, t: int, n: int, g: torch.Generator) -> Tensor:
        # Inverse-CDF sampling of the truncated normal, in float64.
        lo, hi = (0.5 * math.erfc(-b / math.sqrt(2.0)) for b in self.X_TRUNCATION)
        u = torch.rand((t, n, self.INPUT_DIM), generator=g, dtype=torch.float64)
        z = torch.special.ndtri(lo + (hi - lo) * u).clamp(*self.X_TRUNCATION)
        return self.X_SCALE * z

    def _gp(self, x: Tensor, g: torch.Generator) -> Tensor:
        # One joint draw at all of each task's points: L @ N(0, I), K = L L^T.
        k = self.kernel(x, x)
        eye = torch.eye(x.shape[-2], dtype=x.dtype)
        jitter = self.GP_JITTER * self.GP_SCALE**2
        for _ in range(_MAX_JITTER_TRIES):
            chol, info = torch.linalg.cholesky_ex(k + jitter * eye)
            if not bool((info != 0).any()):
                break
            jitter *= 10.0
        else:
            raise RuntimeError("the GP kernel matrix could not be factorised; points too close")
        z = torch.randn((*x.shape[:-1], 1), generator=g, dtype=x.dtype)
        return chol @ z

    def sample(self, num_tasks: int, *, generator: torch.Generator | None = None) -> TaskBatch:
        """Draw ``num_tasks`` Cauchy tasks.

        Returns
        -------
        TaskBatch
            ``support_x [T, k_support, 2]``, ``query_x [T, k_query, 2]``,
            ``support_y [T, k_support, 1]``, ``query_y [T, k_query, 1]``;
            ``info`` holds the GP perturbation at the points,
            ``support_gp [T, k_support, 1]`` and ``query_gp [T, k_query, 1]``,
            and the noiseless function values ``support_f`` and ``query_f``
            of the same shapes.

        """
        t = check_count("num_tasks", num_tasks, minimum=1)
        g = self._generator(generator)
        n = self.k_support + self.k_query
        x64 = self._inputs(t, n, g)
        gp64 = self._gp(x64, g)
        f = (self.mean_function(x64) + gp64).to(self.dtype)
        y = f + self._noise(f.shape, g) if self.noise_std > 0 else f.clone()
        x, gp = x64.to(self.dtype), gp64.to(self.dtype)
        k = self.k_support
        info = {
            "support_gp": gp[:, :k],
            "query_gp": gp[:, k:],
            "support_f": f[:, :k],
            "query_f": f[:, k:],
        }
        return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:], info=info)
