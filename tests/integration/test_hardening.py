"""Bad input to every public entry point gets a clear error that names the argument.

One table: each case calls an entry point with one bad argument (wrong shape or
dtype, NaN/inf, empty tasks, ``n_way`` larger than the classes available,
negative or zero hyper-parameters, data on another device) and names the
exception type and a regular expression that the message must contain. The
good inputs around the bad one are small and valid, so the case fails for the
reason it names and nothing else.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import bayesmeta as bm
from bayesmeta import metrics
from bayesmeta.diagnostics import (
    learner_sbc,
    reference_posterior,
    simulation_based_calibration,
    to_inference_data,
    vi_quality,
)
from bayesmeta.errors import NonFiniteLossError, ShapeError
from bayesmeta.io import CheckpointError, load_learner, save_learner
from bayesmeta.nets import MLP, Conv4
from bayesmeta.predictions.class_prediction import ClassPrediction
from bayesmeta.predictions.prediction import Prediction
from bayesmeta.scoring.calibration import coverage_curve, pit_values, regression_calibration_error
from bayesmeta.tasks import (
    Episodes,
    GroupedTasks,
    PacohCauchy,
    PacohSinusoid,
    Sinusoid,
    SinusoidOrLine,
    Task,
    TaskBatch,
    TaskPool,
    digits_episodes,
    from_arrays,
    from_dataframe,
    glyph_episodes,
    load_image_folder,
    make_glyphs,
    split_classes,
)
from bayesmeta.transfer import BayesianLastLayer, TransferLearner, density_ratio, split_last_layer

NAN, INF = math.nan, math.inf
META = torch.device("meta")


@dataclass(frozen=True)
class Case:
    """One bad call: ``call()`` must raise ``error`` with ``match`` in its message."""

    id: str
    call: Callable[[], object]
    error: type[BaseException]
    match: str


# -- small valid inputs ---------------------------------------------------------------


def reg(k: int = 4, d: int = 1, o: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A regression support set ``[k, d]``, ``[k, o]``."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(k, d, generator=g), torch.randn(k, o, generator=g)


def cls(n_way: int = 3, k: int = 2, d: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """A classification support set: ``k`` points of each of ``n_way`` classes."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(n_way * k, d, generator=g), torch.arange(n_way).repeat_interleave(k)


def with_value(t: torch.Tensor, value: float) -> torch.Tensor:
    """A copy of ``t`` with its first entry set to ``value``."""
    out = t.clone()
    out.view(-1)[0] = value
    return out


def on_meta(t: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(t, device=META)


REG_LEARNERS: dict[str, Callable[..., bm.learners.MetaLearner]] = {
    "MAML": lambda **kw: bm.MAML((1, 8, 1), inner_steps=1, **kw),
    "Reptile": lambda **kw: bm.Reptile((1, 8, 1), inner_steps=1, **kw),
    "BayesianMAML": lambda **kw: bm.BayesianMAML((1, 8, 1), inner_steps=1, **kw),
    "VariationalMetaLearner": lambda **kw: bm.VariationalMetaLearner(
        (1, 8, 1), adapt_steps=1, **kw
    ),
}
CLS_LEARNERS: dict[str, Callable[..., bm.learners.MetaLearner]] = {
    "ProtoNet": lambda **kw: bm.ProtoNet((4, 8), **kw),
    "BayesianProtoNet": lambda **kw: bm.BayesianProtoNet((4, 8), **kw),
    "MatchingNet": lambda **kw: bm.MatchingNet((4, 8), **kw),
}
LEARNERS = {**REG_LEARNERS, **CLS_LEARNERS}


def support(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    return reg() if name in REG_LEARNERS else cls()


def adapt(name: str, x: Any, y: Any, **kw: Any) -> object:
    return LEARNERS[name]().adapt(x, y, **kw)


def predict(name: str, query_x: Any) -> object:
    return adapt(name, *support(name)).predict(query_x)  # type: ignore[attr-defined]


def meta_fit(name: str, source: Any = None, **kw: Any) -> object:
    if source is None:
        source = Sinusoid(2, 2, seed=0) if name in REG_LEARNERS else episodes()
    kw.setdefault("iterations", 1)
    kw.setdefault("meta_batch_size", 2)
    if name == "VariationalMetaLearner":
        kw.setdefault("num_tasks", 2)
    return LEARNERS[name]().meta_fit(source, progress=False, **kw)


def episodes(d: int = 4, **kw: Any) -> Episodes:
    x, y = cls(n_way=4, k=4, d=d)
    args: dict[str, Any] = {"n_way": 2, "k_support": 1, "k_query": 1, "seed": 0, **kw}
    return Episodes(x, y, **args)


# -- the cases ------------------------------------------------------------------------

POSITIVE = "{} must be positive and finite, got"


def learner_cases() -> list[Case]:
    cases: list[Case] = []
    for name, make in LEARNERS.items():
        sx, sy = support(name)
        cases += [
            # hyper-parameters shared by all learners
            Case(
                f"{name}-outer_lr-negative",
                lambda m=make: m(outer_lr=-0.1),
                ValueError,
                POSITIVE.format("outer_lr"),
            ),
            Case(
                f"{name}-outer_lr-zero",
                lambda m=make: m(outer_lr=0.0),
                ValueError,
                POSITIVE.format("outer_lr"),
            ),
            Case(
                f"{name}-outer_lr-nan",
                lambda m=make: m(outer_lr=NAN),
                ValueError,
                POSITIVE.format("outer_lr"),
            ),
            Case(
                f"{name}-outer_lr-str",
                lambda m=make: m(outer_lr="0.1"),
                TypeError,
                "outer_lr must be a number",
            ),
            Case(
                f"{name}-max_grad_norm-zero",
                lambda m=make: m(max_grad_norm=0.0),
                ValueError,
                POSITIVE.format("max_grad_norm"),
            ),
            # adapt: shapes, dtypes, values, emptiness, devices
            Case(
                f"{name}-adapt-support_x-1d",
                lambda n=name, y=sy: adapt(n, torch.zeros(len(y)), y),
                ShapeError,
                r"support_x must have shape",
            ),
            Case(
                f"{name}-adapt-support_x-list",
                lambda n=name, x=sx, y=sy: adapt(n, x.tolist(), y),
                TypeError,
                "support_x must be a torch.Tensor",
            ),
            Case(
                f"{name}-adapt-support_x-nan",
                lambda n=name, x=sx, y=sy: adapt(n, with_value(x, NAN), y),
                ValueError,
                "support_x holds 1 NaN or infinite",
            ),
            Case(
                f"{name}-adapt-support_x-inf",
                lambda n=name, x=sx, y=sy: adapt(n, with_value(x, INF), y),
                ValueError,
                "support_x holds 1 NaN or infinite",
            ),
            Case(
                f"{name}-adapt-support_x-int",
                lambda n=name, x=sx, y=sy: adapt(n, x.long(), y),
                ShapeError,
                "support_x must be a floating tensor",
            ),
            Case(
                f"{name}-adapt-support_x-float64",
                lambda n=name, x=sx, y=sy: adapt(n, x.double(), y),
                ShapeError,
                r"support_x is torch.float64 but the learner's parameters are torch.float32",
            ),
            Case(
                f"{name}-adapt-support_x-features",
                lambda n=name, x=sx, y=sy: adapt(n, torch.cat([x, x], -1), y),
                ShapeError,
                r"input feature\(s\)",
            ),
            Case(
                f"{name}-adapt-support_y-count",
                lambda n=name, x=sx, y=sy: adapt(n, x, y[:-1]),
                ShapeError,
                "support_y must have",
            ),
            Case(
                f"{name}-adapt-empty",
                lambda n=name, x=sx, y=sy: adapt(n, x[:0], y[:0]),
                ValueError,
                "support_x holds no points",
            ),
            Case(
                f"{name}-adapt-support_x-meta",
                lambda n=name, x=sx, y=sy: adapt(n, on_meta(x), y),
                ValueError,
                r"support_x is on meta but the learner's parameters are on cpu",
            ),
            Case(
                f"{name}-adapt-support_y-meta",
                lambda n=name, x=sx, y=sy: adapt(n, x, on_meta(y)),
                ValueError,
                r"support_y is on meta but the learner's parameters are on cpu",
            ),
            Case(
                f"{name}-learner-on-meta",
                lambda m=make, x=sx, y=sy: m().to(META).adapt(x, y),
                ValueError,
                r"support_x is on cpu but the learner's parameters are on meta",
            ),
            # predict
            Case(
                f"{name}-predict-query_x-features",
                lambda n=name, x=sx: predict(n, torch.cat([x, x], -1)),
                ShapeError,
                r"query_x|input feature",
            ),
            Case(
                f"{name}-predict-query_x-nan",
                lambda n=name, x=sx: predict(n, with_value(x, NAN)),
                ValueError,
                "query_x holds 1 NaN or infinite",
            ),
            Case(
                f"{name}-predict-query_x-int",
                lambda n=name, x=sx: predict(n, x.long()),
                ShapeError,
                "query_x must be a floating tensor",
            ),
            Case(
                f"{name}-predict-query_x-float64",
                lambda n=name, x=sx: predict(n, x.double()),
                ShapeError,
                "query_x is torch.float64",
            ),
            Case(
                f"{name}-predict-query_x-batch",
                lambda n=name, x=sx: predict(n, x.unsqueeze(0)),
                ShapeError,
                "query_x must have shape",
            ),
            Case(
                f"{name}-predict-query_x-meta",
                lambda n=name, x=sx: predict(n, on_meta(x)),
                ValueError,
                r"query_x is on meta but the .* on cpu",
            ),
            # meta_fit
            Case(
                f"{name}-meta_fit-iterations",
                lambda n=name: meta_fit(n, iterations=-1),
                ValueError,
                "iterations must be >= 0",
            ),
            Case(
                f"{name}-meta_fit-meta_batch_size",
                lambda n=name: meta_fit(n, meta_batch_size=0),
                ValueError,
                "meta_batch_size must be >= 1",
            ),
            Case(
                f"{name}-meta_fit-source",
                lambda n=name: meta_fit(n, source=[1, 2, 3]),
                TypeError,
                "source|tasks must be",
            ),
        ]
    for name in REG_LEARNERS:
        cases.append(
            Case(
                f"{name}-adapt-labels",
                lambda n=name: adapt(n, reg()[0], torch.zeros(4, dtype=torch.long)),
                ShapeError,
                "floating regression targets",
            )
        )
    for name in CLS_LEARNERS:
        cases += [
            Case(
                f"{name}-adapt-float-labels",
                lambda n=name: adapt(n, cls()[0], cls()[1].float()),
                ShapeError,
                "integer class labels",
            ),
            Case(
                f"{name}-adapt-n_way-too-large",
                lambda n=name: adapt(n, *cls(n_way=3), n_way=5),
                ValueError,
                r"class 3 has no support example|n_way",
            ),
            Case(
                f"{name}-adapt-n_way-zero",
                lambda n=name: adapt(n, *cls(n_way=3), n_way=0),
                ValueError,
                "n_way must be",
            ),
            Case(
                f"{name}-adapt-negative-label",
                lambda n=name: adapt(n, cls()[0], with_value(cls()[1], -1)),
                ValueError,
                r"support_y labels must lie in 0\.\.n_way-1 = 0\.\.2, got labels from -1",
            ),
            Case(
                f"{name}-adapt-bool-labels",
                lambda n=name: adapt(n, cls()[0], cls()[1] > 0),
                ShapeError,
                "support_y must be a real floating or integer tensor",
            ),
        ]
    # learner-specific hyper-parameters
    specific: list[tuple[str, dict[str, Any], type[BaseException], str]] = [
        ("MAML", {"inner_lr": -0.01}, ValueError, "inner_lr"),
        ("MAML", {"inner_lr": 0.0}, ValueError, "inner_lr"),
        ("MAML", {"inner_steps": -1}, ValueError, "inner_steps"),
        ("MAML", {"adapt_steps": -2}, ValueError, "adapt_steps"),
        ("MAML", {"inner_grad_clip": -1.0}, ValueError, "inner_grad_clip"),
        ("MAML", {"loss": "hinge"}, ValueError, "loss"),
        ("Reptile", {"inner_lr": -0.01}, ValueError, "inner_lr"),
        ("Reptile", {"train_on": "query"}, ValueError, "train_on"),
        ("BayesianMAML", {"inner_lr": -1.0}, ValueError, "inner_lr"),
        ("BayesianMAML", {"prior_scale": 0.0}, ValueError, "prior_scale"),
        ("BayesianMAML", {"noise_scale": -0.1}, ValueError, "noise_scale"),
        ("BayesianMAML", {"inner_num_particles": 0}, ValueError, "inner_num_particles"),
        ("BayesianMAML", {"num_particles": 0}, ValueError, "num_particles"),
        ("BayesianMAML", {"kl_weight": -1.0}, ValueError, "kl_weight"),
        ("BayesianMAML", {"scale_rate": 0.0}, ValueError, "scale_rate"),
        ("BayesianMAML", {"likelihood": "poisson"}, ValueError, "likelihood"),
        ("VariationalMetaLearner", {"prior_scale": -0.1}, ValueError, "prior_scale"),
        ("VariationalMetaLearner", {"noise_scale": 0.0}, ValueError, "noise_scale"),
        ("VariationalMetaLearner", {"adapt_lr": -0.05}, ValueError, "adapt_lr"),
        ("VariationalMetaLearner", {"adapt_steps": -1}, ValueError, "adapt_steps"),
        ("VariationalMetaLearner", {"num_particles": 0}, ValueError, "num_particles"),
        ("VariationalMetaLearner", {"hyper_loc_std": 0.0}, ValueError, "hyper_loc_std"),
        ("VariationalMetaLearner", {"hyper_kl_weight": -1.0}, ValueError, "hyper_kl_weight"),
        ("VariationalMetaLearner", {"rank": 0}, ValueError, "rank"),
        ("VariationalMetaLearner", {"guide": "flow"}, ValueError, "guide"),
        ("ProtoNet", {"distance": "manhattan"}, ValueError, "distance"),
        ("BayesianProtoNet", {"prior_scale": -1.0}, ValueError, "prior_scale"),
        ("BayesianProtoNet", {"obs_scale": 0.0}, ValueError, "obs_scale"),
        ("MatchingNet", {"scale": 0.0}, ValueError, "scale"),
        ("MatchingNet", {"processing_steps": 0}, ValueError, "processing_steps"),
    ]
    for name, kw, error, match in specific:
        key = next(iter(kw))
        net = (1, 8, 1) if name in REG_LEARNERS else (4, 8)
        make = getattr(bm, name)
        cases.append(
            Case(f"{name}-{key}={kw[key]}", lambda m=make, a=net, k=kw: m(a, **k), error, match)
        )
    cases += [
        Case(
            "MAML-adapt-steps-negative",
            lambda: adapt("MAML", *reg(), steps=-1),
            ValueError,
            "steps must be >= 0",
        ),
        Case(
            "BayesianMAML-adapt-steps-negative",
            lambda: adapt("BayesianMAML", *reg(), steps=-1),
            ValueError,
            "steps must be >= 0",
        ),
        Case(
            "VariationalMetaLearner-adapt-lr-negative",
            lambda: adapt("VariationalMetaLearner", *reg(), lr=-1.0),
            ValueError,
            "lr must be positive",
        ),
        Case(
            "BayesianProtoNet-predict-num_samples-zero",
            lambda: adapt("BayesianProtoNet", *cls()).predict(cls()[0], num_samples=0),  # type: ignore[attr-defined]
            ValueError,
            "num_samples must be >= 1",
        ),
        Case(
            "MAML-net-sizes-too-short",
            lambda: bm.MAML((1,)),
            ValueError,
            "sizes",
        ),
        Case(
            "MAML-meta_fit-classification-source",
            lambda: meta_fit("MAML", source=episodes(d=1)),
            ShapeError,
            "floating regression targets",
        ),
        Case(
            "VariationalMetaLearner-meta_fit-num_tasks",
            lambda: meta_fit("VariationalMetaLearner", num_tasks=None),
            ValueError,
            "pass num_tasks",
        ),
        Case(
            "VariationalMetaLearner-meta_fit-num_tasks-zero",
            lambda: meta_fit("VariationalMetaLearner", num_tasks=0),
            ValueError,
            "num_tasks must be >= 1",
        ),
        Case(
            "MAML-meta_fit-float64-source",
            lambda: meta_fit("MAML", source=Sinusoid(2, 2, seed=0, dtype=torch.float64)),
            ShapeError,
            "support_x is torch.float64 but the learner's parameters are torch.float32",
        ),
        Case(
            "ProtoNet-meta_fit-regression-source",
            lambda: bm.ProtoNet((1, 8)).meta_fit(Sinusoid(2, 2, seed=0), 1, 2, progress=False),
            ShapeError,
            "integer class labels",
        ),
    ]
    return cases


def grouped(**kw: Any) -> GroupedTasks:
    table: dict[str, list[Any]] = {
        "g": [1, 1, 1, 2, 2, 2],
        "t": [0.0, 1.0, 2.0, 0.0, 1.0, 2.0],
        "w": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    }
    for col, values in kw.pop("columns", {}).items():
        table[col] = values
    args: dict[str, Any] = {"group": "g", "x": "t", "y": "w", "k_support": 1, "seed": 0, **kw}
    return GroupedTasks(table, **args)


def task_cases() -> list[Case]:
    sx, sy = reg()
    qx, qy = reg(3)
    cx, cy = cls()
    batch = Sinusoid(2, 2, seed=0).sample(2)
    return [
        # Task / TaskBatch
        Case(
            "Task-support_x-nan",
            lambda: Task(with_value(sx, NAN), sy, qx, qy),
            ValueError,
            "support_x holds 1",
        ),
        Case(
            "Task-query_y-inf",
            lambda: Task(sx, sy, qx, with_value(qy, INF)),
            ValueError,
            "query_y holds 1",
        ),
        Case(
            "Task-support_x-1d",
            lambda: Task(sx[:, 0], sy, qx, qy),
            ShapeError,
            "support_x must have shape",
        ),
        Case(
            "Task-support_y-1d-float", lambda: Task(sx, sy[:, 0], qx, qy), ShapeError, "support_y"
        ),
        Case(
            "Task-support-empty",
            lambda: Task(sx[:0], sy[:0], qx, qy),
            ValueError,
            "support_x holds no points",
        ),
        Case(
            "Task-support_x-int",
            lambda: Task(sx.long(), sy, qx.long(), qy),
            ShapeError,
            "support_x must be a floating",
        ),
        Case(
            "Task-query_x-dtype",
            lambda: Task(sx, sy, qx.double(), qy),
            ShapeError,
            "support_x is torch.float32 but query_x",
        ),
        Case(
            "Task-features",
            lambda: Task(sx, sy, torch.zeros(3, 2), qy),
            ShapeError,
            "same feature shape",
        ),
        Case(
            "Task-labels-bool",
            lambda: Task(cx, cy > 0, cx, cy),
            ShapeError,
            "support_y must be a real",
        ),
        Case(
            "Task-labels-out-of-range",
            lambda: Task(cx, cy, cx, cy, n_way=2),
            ValueError,
            "0..n_way-1",
        ),
        Case(
            "Task-n_way-zero",
            lambda: Task(cx, cy, cx[:0], cy[:0], n_way=0),
            ValueError,
            "n_way must be >= 1",
        ),
        Case("Task-n_way-regression", lambda: Task(sx, sy, qx, qy, n_way=2), ValueError, "n_way"),
        Case(
            "Task-support_x-meta",
            lambda: Task(on_meta(sx), sy, qx, qy),
            ValueError,
            "support_x is on meta",
        ),
        Case(
            "Task-query_x-meta",
            lambda: Task(sx, sy, on_meta(qx), qy),
            ValueError,
            "query_x is on meta",
        ),
        Case(
            "TaskBatch-batch-mismatch",
            lambda: TaskBatch(
                batch.support_x, batch.support_y, batch.query_x[:1], batch.query_y[:1]
            ),
            ShapeError,
            "query_x must start with the task dimension",
        ),
        Case(
            "TaskBatch-nan",
            lambda: TaskBatch(
                with_value(batch.support_x, NAN), batch.support_y, batch.query_x, batch.query_y
            ),
            ValueError,
            "support_x holds 1",
        ),
        Case(
            "from_arrays-lengths",
            lambda: from_arrays([[0.0], [1.0]], [[0.0]]),
            ShapeError,
            "support_y",
        ),
        Case(
            "from_arrays-nan",
            lambda: from_arrays([[NAN], [1.0]], [[0.0], [1.0]]),
            ValueError,
            "support_x",
        ),
        Case(
            "from_arrays-query-half",
            lambda: from_arrays(sx, sy, qx),
            ValueError,
            "query_x, or neither|both query_x",
        ),
        # Sinusoid / SinusoidOrLine
        Case(
            "Sinusoid-k_support-zero", lambda: Sinusoid(0, 5), ValueError, "k_support must be >= 1"
        ),
        Case(
            "Sinusoid-k_query-negative", lambda: Sinusoid(5, -1), ValueError, "k_query must be >= 0"
        ),
        Case(
            "Sinusoid-k_support-float",
            lambda: Sinusoid(2.5, 5),
            TypeError,
            "k_support must be an int",
        ),  # type: ignore[arg-type]
        Case(
            "Sinusoid-amplitude-reversed",
            lambda: Sinusoid(amplitude=(5.0, 1.0)),
            ValueError,
            "amplitude",
        ),
        Case("Sinusoid-x_range-nan", lambda: Sinusoid(x_range=(NAN, 1.0)), ValueError, "x_range"),
        Case(
            "Sinusoid-noise_std-negative", lambda: Sinusoid(noise_std=-0.1), ValueError, "noise_std"
        ),
        Case("Sinusoid-noise_std-inf", lambda: Sinusoid(noise_std=INF), ValueError, "noise_std"),
        Case(
            "Sinusoid-sample-zero",
            lambda: Sinusoid(seed=0).sample(0),
            ValueError,
            "num_tasks must be >= 1",
        ),
        Case("Sinusoid-dtype-int", lambda: Sinusoid(dtype=torch.long), ValueError, "dtype"),
        Case("SinusoidOrLine-p_sine", lambda: SinusoidOrLine(p_sine=1.5), ValueError, "p_sine"),
        Case("SinusoidOrLine-p_sine-nan", lambda: SinusoidOrLine(p_sine=NAN), ValueError, "p_sine"),
        Case(
            "SinusoidOrLine-slope", lambda: SinusoidOrLine(slope=(3.0, -3.0)), ValueError, "slope"
        ),
        Case(
            "SinusoidOrLine-noise_std",
            lambda: SinusoidOrLine(noise_std=-1.0),
            ValueError,
            "noise_std",
        ),
        Case("SinusoidOrLine-k_support", lambda: SinusoidOrLine(0), ValueError, "k_support"),
        Case(
            "SinusoidOrLine-sample",
            lambda: SinusoidOrLine(seed=0).sample(-1),
            ValueError,
            "num_tasks",
        ),
        # PACOH sources
        Case(
            "PacohSinusoid-k_support",
            lambda: PacohSinusoid(0),
            ValueError,
            "k_support must be >= 1",
        ),
        Case(
            "PacohSinusoid-noise_std",
            lambda: PacohSinusoid(noise_std=-0.1),
            ValueError,
            "noise_std",
        ),
        Case(
            "PacohSinusoid-sample", lambda: PacohSinusoid(seed=0).sample(0), ValueError, "num_tasks"
        ),
        Case("PacohCauchy-k_query", lambda: PacohCauchy(5, -2), ValueError, "k_query must be >= 0"),
        Case("PacohCauchy-noise_std", lambda: PacohCauchy(noise_std=NAN), ValueError, "noise_std"),
        # Episodes and split_classes
        Case(
            "Episodes-n_way-too-large",
            lambda: episodes(n_way=5),
            ValueError,
            r"n_way=5 but only 4 classes",
        ),
        Case("Episodes-n_way-zero", lambda: episodes(n_way=0), ValueError, "n_way must be >= 1"),
        Case(
            "Episodes-k_support-zero",
            lambda: episodes(k_support=0),
            ValueError,
            "k_support must be >= 1",
        ),
        Case(
            "Episodes-k_query-negative",
            lambda: episodes(k_query=-1),
            ValueError,
            "k_query must be >= 0",
        ),
        Case(
            "Episodes-too-few-examples",
            lambda: episodes(k_support=3, k_query=2),
            ValueError,
            "distinct examples per class",
        ),
        Case(
            "Episodes-x-nan",
            lambda: Episodes(with_value(cx, NAN), cy, 2, 1, 1),
            ValueError,
            "x holds 1 NaN",
        ),
        Case(
            "Episodes-labels-2d",
            lambda: Episodes(cx, cy[:, None], 2, 1, 1),
            ShapeError,
            "labels must be 1-D",
        ),
        Case(
            "Episodes-labels-fractional",
            lambda: Episodes(cx, cy + 0.5, 2, 1, 1),
            ValueError,
            "labels must hold whole-number",
        ),
        Case(
            "Episodes-lengths",
            lambda: Episodes(cx, cy[:-1], 2, 1, 1),
            ShapeError,
            r"x .* labels|labels .* x",
        ),
        Case(
            "Episodes-empty",
            lambda: Episodes(cx[:0], cy[:0], 2, 1, 1),
            ValueError,
            "hold no examples",
        ),
        Case("Episodes-classes-unknown", lambda: episodes(classes=[0, 9]), ValueError, "9"),
        Case("Episodes-classes-too-few", lambda: episodes(classes=[0]), ValueError, "n_way"),
        Case(
            "Episodes-sample-zero",
            lambda: episodes().sample(0),
            ValueError,
            "num_tasks must be >= 1",
        ),
        Case(
            "split_classes-empty",
            lambda: split_classes(torch.zeros(0, dtype=torch.long)),
            ValueError,
            "labels is empty",
        ),
        Case(
            "split_classes-negative",
            lambda: split_classes(torch.arange(10), (1.2, -0.2)),
            ValueError,
            "positive",
        ),
        Case(
            "split_classes-too-many",
            lambda: split_classes(torch.arange(3), (2, 2)),
            ValueError,
            "only 3 classes",
        ),
        # glyphs and digits
        Case(
            "glyph_episodes-n_way-too-large",
            lambda: glyph_episodes(6, 1, 1, num_classes=10, examples_per_class=4, image_size=8),
            ValueError,
            "n_way=6",
        ),
        Case(
            "glyph_episodes-k_support-zero",
            lambda: glyph_episodes(2, 0, num_classes=10, examples_per_class=4, image_size=8),
            ValueError,
            "k_support must be >= 1",
        ),
        Case(
            "glyph_episodes-examples",
            lambda: glyph_episodes(2, 3, 3, num_classes=10, examples_per_class=4, image_size=8),
            ValueError,
            "distinct examples per class",
        ),
        Case(
            "glyph_episodes-image_size",
            lambda: glyph_episodes(2, 1, 1, num_classes=10, image_size=4),
            ValueError,
            "image_size must be >= 8",
        ),
        Case(
            "glyph_episodes-num_classes",
            lambda: glyph_episodes(2, 1, 1, num_classes=0),
            ValueError,
            "num_classes must be >= 1",
        ),
        Case(
            "digits_episodes-n_way-too-large",
            lambda: digits_episodes(6),
            ValueError,
            "n_way=6 but only 5 classes",
        ),
        Case(
            "digits_episodes-k_query",
            lambda: digits_episodes(5, 1, -1),
            ValueError,
            "k_query must be >= 0",
        ),
        Case(
            "digits_episodes-classes",
            lambda: digits_episodes(2, train_classes=(0, 11)),
            ValueError,
            "11",
        ),
        # grouped tables
        Case("GroupedTasks-column", lambda: grouped(x="missing"), KeyError, "no column 'missing'"),
        Case(
            "GroupedTasks-nan",
            lambda: grouped(columns={"t": [0.0, NAN, 2.0, 0.0, 1.0, 2.0]}),
            ValueError,
            "column 't' holds a missing",
        ),
        Case(
            "GroupedTasks-text",
            lambda: grouped(columns={"t": ["a"] * 6}),
            ShapeError,
            "column 't' must hold numbers",
        ),
        Case(
            "GroupedTasks-k_support-zero",
            lambda: grouped(k_support=0),
            ValueError,
            "k_support must be >= 1",
        ),
        Case(
            "GroupedTasks-k_support-too-large",
            lambda: grouped(k_support=5),
            ValueError,
            r"group 1 has 3 row\(s\) but .* k_support",
        ),
        Case(
            "GroupedTasks-k_query-negative",
            lambda: grouped(k_query=-1),
            ValueError,
            "k_query must be >= 0",
        ),
        Case("GroupedTasks-split", lambda: grouped(split="last"), ValueError, "split must be"),
        Case(
            "GroupedTasks-groups",
            lambda: grouped(groups=[7]),
            ValueError,
            r"groups \[7\] do not occur",
        ),
        Case(
            "GroupedTasks-labels",
            lambda: grouped(columns={"w": [0.5] * 6}, classification=True),
            ValueError,
            "class labels",
        ),
        Case(
            "GroupedTasks-empty",
            lambda: GroupedTasks({"g": [], "t": [], "w": []}, group="g", x="t", y="w", k_support=1),
            ValueError,
            "no rows",
        ),
        Case(
            "GroupedTasks-data",
            lambda: GroupedTasks([1, 2, 3], group="g", x="t", y="w", k_support=1),
            TypeError,
            "data",
        ),
        Case(
            "GroupedTasks-sample-zero",
            lambda: grouped().sample(0),
            ValueError,
            "num_tasks must be >= 1",
        ),
        Case(
            "from_dataframe-k_support",
            lambda: from_dataframe(
                {"g": [1], "t": [0.0], "w": [1.0]}, group="g", x="t", y="w", k_support=-1
            ),
            ValueError,
            "k_support",
        ),
    ]


def source_net() -> nn.Module:
    torch.manual_seed(0)
    return MLP((1, 8, 1))


def transfer_cases() -> list[Case]:
    sx, sy = reg()
    cx, cy = cls()

    def tl(**kw: Any) -> TransferLearner:
        kw.setdefault("steps", 2)
        return TransferLearner(source_net(), **kw)

    def bll(**kw: Any) -> BayesianLastLayer:
        kw.setdefault("svi_steps", 2)
        kw.setdefault("num_outputs", 1)
        return BayesianLastLayer(nn.Sequential(nn.Linear(1, 8), nn.Tanh()), **kw)

    xs, xt = torch.randn(20, 2), torch.randn(20, 2) + 1
    return [
        Case("TransferLearner-method", lambda: tl(method="mcmc"), ValueError, "method"),
        Case(
            "TransferLearner-prior_scale", lambda: tl(prior_scale=-1.0), ValueError, "prior_scale"
        ),
        Case("TransferLearner-noise_scale", lambda: tl(noise_scale=0.0), ValueError, "noise_scale"),
        Case("TransferLearner-steps", lambda: tl(steps=0), ValueError, "steps must be >= 1"),
        Case("TransferLearner-lr", lambda: tl(lr=-0.01), ValueError, "lr must be positive"),
        Case("TransferLearner-num_particles", lambda: tl(num_particles=0), ValueError, "particles"),
        Case(
            "TransferLearner-source",
            lambda: TransferLearner("net.pt"),
            TypeError,
            "source must be a torch.nn.Module",
        ),  # type: ignore[arg-type]
        Case(
            "TransferLearner-adapt-nan",
            lambda: tl().adapt(with_value(sx, NAN), sy),
            ValueError,
            "support_x holds 1",
        ),
        Case(
            "TransferLearner-adapt-1d",
            lambda: tl().adapt(sx[:, 0], sy),
            ShapeError,
            "support_x must have shape",
        ),
        Case(
            "TransferLearner-adapt-features",
            lambda: tl().adapt(torch.zeros(4, 3), sy),
            ShapeError,
            "support_x|input",
        ),
        Case(
            "TransferLearner-adapt-empty",
            lambda: tl().adapt(sx[:0], sy[:0]),
            ValueError,
            "support_x holds no points",
        ),
        Case(
            "TransferLearner-adapt-labels",
            lambda: tl().adapt(sx, torch.zeros(4, dtype=torch.long)),
            ShapeError,
            "targets|labels",
        ),
        Case(
            "TransferLearner-adapt-float64",
            lambda: tl().adapt(sx.double(), sy.double()),
            ShapeError,
            "support_x is torch.float64",
        ),
        Case(
            "TransferLearner-adapt-meta",
            lambda: tl().adapt(on_meta(sx), sy),
            ValueError,
            "support_x is on meta but .* cpu",
        ),
        Case(
            "TransferLearner-adapt-weights-negative",
            lambda: tl().adapt(sx, sy, weights=-torch.ones(4)),
            ValueError,
            "weights must be non-negative",
        ),
        Case(
            "TransferLearner-adapt-weights-shape",
            lambda: tl().adapt(sx, sy, weights=torch.ones(3)),
            ShapeError,
            "weights",
        ),
        Case(
            "TransferLearner-adapt-weights-nan",
            lambda: tl().adapt(sx, sy, weights=with_value(torch.ones(4), NAN)),
            ValueError,
            "weights holds 1",
        ),
        Case(
            "TransferLearner-predict-features",
            lambda: tl().adapt(sx, sy).predict(torch.zeros(3, 2)),
            ShapeError,
            "query_x|input",
        ),
        Case(
            "TransferLearner-predict-nan",
            lambda: tl().adapt(sx, sy).predict(with_value(sx, NAN)),
            ValueError,
            "query_x holds 1",
        ),
        Case(
            "BayesianLastLayer-num_outputs",
            lambda: bll(num_outputs=0),
            ValueError,
            "num_outputs must be >= 1",
        ),
        Case(
            "BayesianLastLayer-prior_scale",
            lambda: bll(prior_scale=-1.0),
            ValueError,
            "prior_scale",
        ),
        Case(
            "BayesianLastLayer-noise_scale", lambda: bll(noise_scale=0.0), ValueError, "noise_scale"
        ),
        Case("BayesianLastLayer-svi_lr", lambda: bll(svi_lr=-1.0), ValueError, "svi_lr"),
        Case(
            "BayesianLastLayer-encoder",
            lambda: BayesianLastLayer((1, 8), num_outputs=1),
            TypeError,
            "encoder",
        ),  # type: ignore[arg-type]
        Case(
            "BayesianLastLayer-adapt-nan",
            lambda: bll().adapt(with_value(sx, NAN), sy),
            ValueError,
            "support_x holds 1",
        ),
        Case(
            "BayesianLastLayer-adapt-empty",
            lambda: bll().adapt(sx[:0], sy[:0]),
            ValueError,
            "support_x holds no points",
        ),
        Case(
            "BayesianLastLayer-adapt-y-shape",
            lambda: bll().adapt(sx, torch.zeros(4, 2)),
            ShapeError,
            "support_y|output",
        ),
        Case(
            "BayesianLastLayer-adapt-meta",
            lambda: bll().adapt(on_meta(sx), sy),
            ValueError,
            "support_x is on meta",
        ),
        Case(
            "BayesianLastLayer-adapt-label-out-of-range",
            lambda: BayesianLastLayer(
                nn.Linear(4, 3), num_outputs=2, classification=True, svi_steps=2
            ).adapt(cx, cy),
            ValueError,
            "num_outputs=2",
        ),
        Case(
            "BayesianLastLayer-predict-nan",
            lambda: bll().adapt(sx, sy).predict(with_value(sx, NAN)),
            ValueError,
            "query_x holds 1|x holds 1",
        ),
        Case("density_ratio-l2", lambda: density_ratio(xs, xt, l2=-1.0), ValueError, "l2 must be"),
        Case(
            "density_ratio-steps",
            lambda: density_ratio(xs, xt, steps=0),
            ValueError,
            "steps must be",
        ),
        Case(
            "density_ratio-clip",
            lambda: density_ratio(xs, xt, clip=0.5),
            ValueError,
            "clip must be",
        ),
        Case(
            "density_ratio-hidden",
            lambda: density_ratio(xs, xt, hidden=0),
            ValueError,
            "hidden must be",
        ),
        Case(
            "density_ratio-features",
            lambda: density_ratio(xs, xt[:, :1]),
            ShapeError,
            "source_x|target_x",
        ),
        Case(
            "density_ratio-nan",
            lambda: density_ratio(with_value(xs, NAN), xt),
            ValueError,
            "source_x holds 1",
        ),
        Case(
            "density_ratio-empty",
            lambda: density_ratio(xs, xt[:0]),
            ValueError,
            "target_x holds no points",
        ),
        Case(
            "density_ratio-meta",
            lambda: density_ratio(xs, on_meta(xt)),
            ValueError,
            "target_x is on meta",
        ),
        Case(
            "density_ratio-weights-features",
            lambda: density_ratio(xs, xt, steps=2)(torch.zeros(3, 3)),
            ShapeError,
            r"x must have shape \[M, 2\]",
        ),
    ]


def diagnostics_cases() -> list[Case]:
    sx, sy = reg()

    def bmaml_post() -> tuple[bm.BayesianMAML, Any]:
        torch.manual_seed(0)
        learner = bm.BayesianMAML((1, 8, 1), inner_steps=1)
        return learner, learner.adapt(sx, sy)

    def vq(x: Any, y: Any, **kw: Any) -> object:
        learner, post = bmaml_post()
        return vi_quality(learner, post, x, y, **kw)

    def sbc(**kw: Any) -> object:
        learner = bm.BayesianMAML((1, 8, 1), inner_steps=1)
        args: dict[str, Any] = {"design_x": sx, "num_simulations": 4, "num_draws": 3, **kw}
        return simulation_based_calibration(
            learner.fnet, learner.prior, learner.likelihood, learner.adapt, **args
        )

    def idata(**kw: Any) -> object:
        _, post = bmaml_post()
        return to_inference_data(post, **{"num_samples": 4, **kw})

    return [
        Case(
            "vi_quality-nan", lambda: vq(with_value(sx, NAN), sy), ValueError, "support_x holds 1"
        ),
        Case("vi_quality-shape", lambda: vq(sx[:, 0], sy), ShapeError, "support_x must have shape"),
        Case(
            "vi_quality-empty", lambda: vq(sx[:0], sy[:0]), ValueError, "support_x holds no points"
        ),
        Case(
            "vi_quality-num_samples",
            lambda: vq(sx, sy, num_samples=0),
            ValueError,
            "num_samples must be >= 1",
        ),
        Case(
            "vi_quality-learner",
            lambda: vi_quality(bm.MAML((1, 8, 1)), bmaml_post()[1], sx, sy),
            TypeError,
            "BayesianMAML",
        ),
        Case(
            "sbc-num_simulations",
            lambda: sbc(num_simulations=1),
            ValueError,
            "num_simulations must be >= 2",
        ),
        Case("sbc-num_draws", lambda: sbc(num_draws=0), ValueError, "num_draws must be >= 1"),
        Case(
            "sbc-design_x-nan",
            lambda: sbc(design_x=with_value(sx, NAN)),
            ValueError,
            "design_x holds 1",
        ),
        Case(
            "sbc-design_x-shape",
            lambda: sbc(design_x=sx[:, 0]),
            ShapeError,
            "design_x must have shape",
        ),
        Case(
            "sbc-function_x-nan",
            lambda: sbc(function_x=with_value(sx, NAN)),
            ValueError,
            "function_x holds 1",
        ),
        Case("sbc-weights", lambda: sbc(weights=[1000]), ValueError, "weights must index"),
        Case(
            "to_inference_data-num_samples",
            lambda: idata(num_samples=0),
            ValueError,
            "num_samples must be >= 1",
        ),
        Case(
            "to_inference_data-query_y-alone",
            lambda: idata(query_y=sy),
            ValueError,
            "query_y needs query_x",
        ),
        Case(
            "to_inference_data-query_x-nan",
            lambda: idata(query_x=with_value(sx, NAN)),
            ValueError,
            "query_x holds 1",
        ),
        Case(
            "to_inference_data-query_y-shape",
            lambda: idata(query_x=sx, query_y=sy[:2]),
            ShapeError,
            "query_y",
        ),
        Case(
            "to_inference_data-posterior",
            lambda: to_inference_data(object()),
            TypeError,
            "posterior",
        ),
    ]


TARGETS = r"y \(the targets\) must have the prediction's shape \[\*B, N, O\] = \[5, 1\]"


def metric_cases() -> list[Case]:
    mean = torch.zeros(5, 1)
    pred = Prediction.point(mean, torch.ones(1))
    logits = torch.zeros(5, 3)
    cpred = ClassPrediction.point(logits)
    y = torch.zeros(5, 1)
    labels = torch.zeros(5, dtype=torch.long)
    return [
        Case(
            "Prediction-noise_scale",
            lambda: Prediction.point(mean, -torch.ones(1)),
            ValueError,
            "noise_scale",
        ),
        Case(
            "ClassPrediction-nan",
            lambda: ClassPrediction.point(with_value(logits, NAN)),
            ValueError,
            "NaN",
        ),
        Case("mse-shape", lambda: metrics.mse(pred, y[:3]), ShapeError, TARGETS),
        Case("mse-nan", lambda: metrics.mse(pred, with_value(y, NAN)), ValueError, "y holds 1"),
        Case("nll-shape", lambda: metrics.nll(pred, torch.zeros(5, 2)), ShapeError, TARGETS),
        Case("coverage-level", lambda: metrics.coverage(pred, y, level=1.5), ValueError, "level"),
        Case(
            "coverage-level-zero", lambda: metrics.coverage(pred, y, level=0.0), ValueError, "level"
        ),
        Case("crps-shape", lambda: metrics.crps(pred, y[:2]), ShapeError, TARGETS),
        Case(
            "accuracy-labels-range",
            lambda: metrics.accuracy(cpred, labels + 3),
            ValueError,
            r"labels must lie in 0\.\.2, got 3\.\.3",
        ),
        Case(
            "accuracy-labels-float",
            lambda: metrics.accuracy(cpred, labels.float()),
            ShapeError,
            "integer",
        ),
        Case(
            "brier-labels-shape", lambda: metrics.brier(cpred, labels[:2]), ShapeError, "labels|y"
        ),
        Case(
            "mean_ci-empty",
            lambda: metrics.mean_ci(torch.zeros(0)),
            ValueError,
            "at least one value",
        ),
        Case(
            "mean_ci-level", lambda: metrics.mean_ci(torch.ones(3), level=1.5), ValueError, "level"
        ),
        Case(
            "ece-num_bins",
            lambda: metrics.expected_calibration_error(cpred, labels, num_bins=0),
            ValueError,
            "num_bins",
        ),
        Case(
            "reliability-num_bins",
            lambda: metrics.reliability(cpred, labels, num_bins=-3),
            ValueError,
            "num_bins",
        ),
        Case("pit_values-shape", lambda: pit_values(pred, y[:2]), ShapeError, "y must have the"),
        Case(
            "pit_values-nan", lambda: pit_values(pred, with_value(y, NAN)), ValueError, "y holds 1"
        ),
        Case(
            "coverage_curve-levels",
            lambda: coverage_curve(pred, y, levels=[0.5, 1.5]),
            ValueError,
            "levels",
        ),
        Case(
            "calibration_error-reduction",
            lambda: regression_calibration_error(pred, y, reduction="max"),
            ValueError,
            "reduction",
        ),
    ]


def net_io_cases(tmp: Callable[[], Any]) -> list[Case]:
    def corrupt() -> object:
        path = tmp() / "broken.safetensors"
        path.write_bytes(b"not a checkpoint")
        return load_learner(path)

    return [
        Case("MLP-sizes-short", lambda: MLP((3,)), ValueError, "sizes"),
        Case("MLP-sizes-zero", lambda: MLP((3, 0, 1)), ValueError, "sizes"),
        Case("MLP-sizes-negative", lambda: MLP((3, -4, 1)), ValueError, "sizes"),
        Case(
            "MLP-activation", lambda: MLP((1, 4, 1), activation="swishy"), ValueError, "activation"
        ),
        Case(
            "MLP-forward-features",
            lambda: MLP((3, 4, 1))(torch.zeros(2, 5)),
            ShapeError,
            r"3 input feature\(s\)",
        ),
        Case("Conv4-hidden", lambda: Conv4(1, 5, hidden=0), ValueError, "hidden"),
        Case("Conv4-in_channels", lambda: Conv4(-1), ValueError, "in_channels"),
        Case("Conv4-image_size", lambda: Conv4(1, 5, image_size=0), ValueError, "image_size"),
        Case("Conv4-out_features", lambda: Conv4(1, 0), ValueError, "out_features"),
        Case(
            "Conv4-forward-shape",
            lambda: Conv4(1, 5, image_size=8)(torch.zeros(2, 8, 8)),
            ValueError,
            r"Conv4 takes images \[N, 1, H, W\]",
        ),
        Case(
            "Conv4-forward-channels",
            lambda: Conv4(1, 5, image_size=8)(torch.zeros(2, 3, 8, 8)),
            ValueError,
            r"Conv4 takes images \[N, 1, H, W\]",
        ),
        Case(
            "save_learner-not-a-learner",
            lambda: save_learner(nn.Linear(1, 1), tmp() / "x.safetensors"),
            TypeError,
            "learner",
        ),  # type: ignore[arg-type]
        Case(
            "load_learner-missing",
            lambda: load_learner(tmp() / "nothing.safetensors"),
            CheckpointError,
            "no checkpoint",
        ),
        Case("load_learner-corrupt", corrupt, CheckpointError, "not a readable safetensors"),
    ]


_TMP: list[Any] = []


def tmp_dir() -> Any:
    return _TMP[-1]


def steep() -> tuple[torch.Tensor, torch.Tensor]:
    """A support set with large targets, on which big inner steps diverge (batch of 2 tasks)."""
    g = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(2, 5, 1, generator=g)
    y = 100.0 * torch.randn(2, 5, 1, generator=g)
    return x, y


def without_nan_warning(fn: Callable[..., object], *args: Any) -> object:
    """Call ``fn`` with Pyro's "Encountered NaN" warning (issued before the error) silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
        return fn(*args)


def more_cases() -> list[Case]:
    """Arguments of the wrong kind, and class labels the network has no output for."""
    cx, cy = cls(n_way=5, k=1)  # labels 0..4
    labels_error = r"support_y holds class labels 0\.\.4 but the network has 3 output"
    cpred = ClassPrediction.point(torch.zeros(5, 3))
    return [
        Case(
            "MAML-cross_entropy-labels-beyond-outputs",
            lambda: bm.MAML((4, 8, 3), loss="cross_entropy").adapt(cx, cy),
            ValueError,
            labels_error,
        ),
        Case(
            "MAML-cross_entropy-meta_fit-n_way-beyond-outputs",
            lambda: bm.MAML((4, 8, 3), loss="cross_entropy").meta_fit(
                episodes(n_way=4), 1, 2, progress=False
            ),
            ValueError,
            r"support_y holds class labels 0\.\.3 but the network has 3 output",
        ),
        Case(
            "BayesianMAML-categorical-labels-beyond-outputs",
            lambda: bm.BayesianMAML((4, 8, 3), likelihood="categorical").adapt(cx, cy),
            ValueError,
            labels_error,
        ),
        Case(
            "VariationalMetaLearner-categorical-labels-beyond-outputs",
            lambda: bm.VariationalMetaLearner((4, 8, 3), likelihood="categorical").adapt(cx, cy),
            ValueError,
            labels_error,
        ),
        Case(
            "MAML-cross_entropy-negative-label",
            lambda: bm.MAML((4, 8, 3), loss="cross_entropy").adapt(cx, cy - 1),
            ValueError,
            r"support_y holds class labels -1\.\.3",
        ),
        Case("MAML-net-str", lambda: bm.MAML("mlp"), TypeError, "sizes must be a sequence of ints"),  # type: ignore[arg-type]
        Case(
            "MAML-optimizer-str",
            lambda: bm.MAML((1, 8, 1), optimizer="adam"),  # type: ignore[arg-type]
            TypeError,
            "optimizer must be a factory",
        ),
        Case("Sinusoid-seed-str", lambda: Sinusoid(seed="a"), TypeError, "seed must be an int"),  # type: ignore[arg-type]
        Case("Episodes-seed-float", lambda: episodes(seed=0.5), TypeError, "seed must be an int"),
        Case(
            "Sinusoid-amplitude-scalar",
            lambda: Sinusoid(amplitude=5.0),  # type: ignore[arg-type]
            TypeError,
            r"amplitude must be a \(low, high\) pair",
        ),
        Case("TaskPool-str", lambda: TaskPool("abc"), TypeError, "tasks must be a TaskBatch"),  # type: ignore[arg-type]
        Case("TaskPool-items", lambda: TaskPool([1, 2]), TypeError, r"tasks\[0\] must be a Task"),  # type: ignore[list-item]
        Case("TaskPool-empty", lambda: TaskPool([]), ValueError, "at least one task"),
        Case(
            "make_glyphs-distortion",
            lambda: make_glyphs(3, 2, 8, distortion=-1.0),
            ValueError,
            "distortion must be",
        ),
        Case(
            "load_image_folder-missing",
            lambda: load_image_folder("/nonexistent/bayesmeta"),
            FileNotFoundError,
            "root .* does not exist",
        ),
        Case(
            "Conv4-forward-int",
            lambda: Conv4(1, 5, image_size=8)(torch.zeros(2, 1, 8, 8, dtype=torch.long)),
            ValueError,
            "Conv4 takes floating images",
        ),
        Case(
            "ece-labels-range",
            lambda: metrics.expected_calibration_error(cpred, torch.tensor([0, 1, 2, 0, 5])),
            ValueError,
            r"labels must lie in 0\.\.2",
        ),
        Case(
            "reliability-labels-negative",
            lambda: metrics.reliability(cpred.probs, torch.tensor([0, 1, 2, 0, -1])),
            ValueError,
            r"labels must lie in 0\.\.2",
        ),
        # a diverging inner loop is an error, not a silent NaN prediction
        Case(
            "MAML-adapt-diverges",
            lambda: bm.MAML((1, 16, 1), inner_lr=1e4, inner_steps=20).adapt(*steep()),
            NonFiniteLossError,
            r"MAML\.adapt diverged: the adapted weights of task\(s\) \[0, 1\] .* inner_grad_clip",
        ),
        Case(
            "Reptile-adapt-diverges",
            lambda: bm.Reptile((1, 16, 1), inner_lr=1e4, inner_steps=20).adapt(*steep()),
            NonFiniteLossError,
            r"Reptile\.adapt diverged",
        ),
        Case(
            "BayesianMAML-adapt-diverges",
            lambda: bm.BayesianMAML((1, 16, 1), inner_lr=1e4, inner_steps=20).adapt(*steep()),
            NonFiniteLossError,
            r"BayesianMAML\.adapt diverged: .* Lower inner_lr or steps, or check",
        ),
        Case(
            "BayesianMAML-delta-adapt-diverges",
            lambda: bm.BayesianMAML(
                (1, 16, 1), posterior="delta", inner_lr=1e4, inner_steps=20
            ).adapt(*steep()),
            NonFiniteLossError,
            r"BayesianMAML\.adapt diverged",
        ),
        Case(
            "VariationalMetaLearner-adapt-diverges",
            lambda: without_nan_warning(
                bm.VariationalMetaLearner((1, 16, 1), adapt_lr=1e4, adapt_steps=20).adapt, *steep()
            ),
            NonFiniteLossError,
            "the adaptation ELBO became nan",
        ),
        Case(
            "MAML-adapt-huge-inputs",
            lambda: bm.MAML((1, 16, 1), inner_steps=2).adapt(
                torch.full((5, 1), 1e30), steep()[1][0]
            ),
            NonFiniteLossError,
            r"MAML\.adapt diverged",
        ),
        # further entry points: reference posteriors, SBC, noise fits, transfer priors
        Case(
            "reference_posterior-num_samples",
            lambda: reference_posterior(bm.BayesianMAML((1, 4, 1)), *reg(), num_samples=0),
            ValueError,
            "num_samples must be >= 4",
        ),
        Case(
            "reference_posterior-warmup_steps",
            lambda: reference_posterior(bm.BayesianMAML((1, 4, 1)), *reg(), warmup_steps=-1),
            ValueError,
            "warmup_steps must be >= 0",
        ),
        Case(
            "reference_posterior-nan",
            lambda: reference_posterior(
                bm.BayesianMAML((1, 4, 1)), with_value(reg()[0], NAN), reg()[1]
            ),
            ValueError,
            "support_x holds 1 NaN",
        ),
        Case(
            "learner_sbc-learner",
            lambda: learner_sbc(bm.MAML((1, 4, 1)), reg()[0]),
            TypeError,
            "learner_sbc supports BayesianMAML",
        ),
        Case(
            "fit_noise_scale-classification",
            lambda: bm.MAML((4, 8, 4), loss="cross_entropy").fit_noise_scale(episodes().sample(2)),
            ValueError,
            "only defined for regression",
        ),
        Case(
            "fit_noise_scale-not-a-batch",
            lambda: bm.MAML((1, 8, 1)).fit_noise_scale(reg()),  # type: ignore[arg-type]
            TypeError,
            "expected a TaskBatch",
        ),
        Case(
            "TransferLearner-fit_prior-method",
            lambda: TransferLearner(source_net(), method="map", prior_scale=1.0).fit_prior(
                torch.randn(2, 3, 1), torch.randn(2, 3, 1)
            ),
            ValueError,
            "fit_prior needs method='bayes' or 'laplace'",
        ),
        Case(
            "TransferLearner-fit_prior-one-task",
            lambda: TransferLearner(source_net(), steps=2).fit_prior(*reg()),
            ShapeError,
            r"expected the data of several tasks \[T, K, \*features\]",
        ),
        Case(
            "split_last_layer-no-linear",
            lambda: split_last_layer(nn.ReLU()),
            TypeError,
            "cannot find the last linear layer",
        ),
        Case(
            "Episodes.from_dataset-items",
            lambda: Episodes.from_dataset([1, 2, 3], 1, 1, 0),  # type: ignore[arg-type]
            ValueError,
            r"dataset\[0\] must be an \(x, label\) pair",
        ),
        Case(
            "BayesianProtoNet-posterior-n_way-too-large",
            lambda: bm.BayesianProtoNet((4, 8)).posterior(*cls(n_way=3), n_way=5),
            ValueError,
            "no example of class 3",
        ),
    ]


CASES = (
    learner_cases()
    + task_cases()
    + transfer_cases()
    + diagnostics_cases()
    + metric_cases()
    + net_io_cases(tmp_dir)
    + more_cases()
)


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error(case: Case, tmp_path: Any) -> None:
    _TMP.append(tmp_path)
    try:
        with pytest.raises(case.error, match=case.match):
            case.call()
    finally:
        _TMP.pop()
