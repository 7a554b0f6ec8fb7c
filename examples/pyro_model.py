"""A bayesmeta learner as a Pyro model: Predictive, likelihoods, priors, autoguides, NUTS, transfer.

Every learner is a configuration of one hierarchical model, and ``learner.model`` is that
model as a Pyro model ``model(x, y=None)``: a plate ``"tasks"``, each task's flat weights as
the sample site ``"theta"`` ``[T, P]`` (from the meta-learned prior) and the targets as the
observed site ``"y"`` (from the likelihood). An adapted posterior carries a Pyro guide for
``"theta"`` (``post.guide``), so Pyro's own tools run on a meta-trained learner:

1. meta-train Bayesian MAML on 5-shot sinusoids and print its model's trace shapes;
2. ``pyro.infer.Predictive(learner.model, guide=post.guide)`` against ``post.predict``;
3. a Student-t likelihood given as a distribution factory ``f -> StudentT(4, f, 0.3)``;
4. a Laplace prior over the weights (``prior=bm.priors.Laplace()``);
5. a Pyro autoguide fitted at test time under the meta-learned prior;
6. NUTS on the same model for one task, against the learner's own posterior;
7. transfer as a prior: ``TransferLearner(source).model`` is the same model centred on a
   source network's weights;

and a table of held-out metrics (mean ± 95% CI over tasks).

Run:  python examples/pyro_model.py            (a few minutes on 2 CPU cores)
      python examples/pyro_model.py --quick    (well under a minute; what CI runs)
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS, Predictive
from pyro.infer.autoguide import AutoLowRankMultivariateNormal
from torch import Tensor

import bayesmeta as bm
from bayesmeta.runs.experiment import format_table

LEVEL = 0.9  # the central interval whose coverage the tables report


@dataclass(frozen=True)
class Settings:
    iterations: int  # meta-iterations of the main learner
    variant_iterations: int  # meta-iterations of the Student-t and Laplace variants
    eval_tasks: int  # held-out tasks in the metrics table
    guide_steps: int  # SVI steps of the autoguide fit, per task
    nuts_samples: int  # NUTS warm-up steps and draws (each)
    nuts_depth: int  # NUTS max_tree_depth
    draws: int  # posterior draws for predictions


QUICK = Settings(300, 150, 8, 150, 40, 6, 200)
FULL = Settings(10_000, 4_000, 40, 600, 300, 8, 500)


def held_out_metrics(pred: bm.Prediction, y: Tensor) -> dict[str, Tensor]:
    """Per-task MSE, NLL and interval coverage ``[T]`` (the table's columns)."""
    return {
        "mse": bm.metrics.mse(pred, y),
        "nll": bm.metrics.nll(pred, y),
        f"coverage_{round(LEVEL * 100)}": bm.metrics.coverage(pred, y, LEVEL),
    }


def summarise(values: dict[str, Tensor]) -> dict[str, tuple[float, float]]:
    """``{metric: (mean, 95% CI half-width)}`` over tasks."""
    return {name: bm.metrics.mean_ci(v) for name, v in values.items()}


def base_family(fn: dist.Distribution) -> str:
    """The distribution family under a site's ``Independent`` wrappers."""
    while isinstance(fn, dist.Independent):
        fn = fn.base_dist
    return type(fn).__name__


def nuts_prediction(learner: bm.BayesianMAML, theta: Tensor, xq: Tensor) -> bm.Prediction:
    """The posterior predictive of NUTS draws ``theta`` ``[S, 1, P]`` at ``xq`` ``[1, Q, D]``."""
    with torch.no_grad():
        f = learner.fnet(theta, xq)[:, 0]  # [S, Q, O]: one task
        noise = learner.predictive_noise()  # the noise predict() uses (calibrated)
    return bm.Prediction(f, noise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (what CI runs)")
    parser.add_argument("--iterations", type=int, help="meta-iterations of the main learner")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    iterations = args.iterations or cfg.iterations
    torch.set_num_threads(1)  # tiny networks: one thread is fastest
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    start = time.perf_counter()

    # -- 1. the learner and its model --------------------------------------------------------
    source = bm.Sinusoid(k_support=5, k_query=20, noise_std=0.1, seed=0)
    learner = bm.BayesianMAML((1, 40, 40, 1), inner_steps=5)
    history = learner.meta_fit(source, iterations=iterations, meta_batch_size=10, progress=False)
    print(
        f"[1] meta-trained BayesianMAML: {history.iterations} iterations in "
        f"{history.wall_time_s:.1f} s"
    )
    test = bm.Sinusoid(k_support=5, k_query=20, noise_std=0.1, seed=2).sample(cfg.eval_tasks)
    xs, ys, xq, yq = test.support_x, test.support_y, test.query_x, test.query_y  # [T, N, 1]

    model = learner.model
    print(f"    {model}")
    trace = pyro.poutine.trace(model).get_trace(xs[:4], ys[:4])
    print("    the model on 4 tasks' support sets (x [4, 5, 1], y [4, 5, 1]):")
    print("\n".join("      " + line for line in trace.format_shapes().splitlines()))
    print(
        f"    theta ~ {base_family(trace.nodes['theta']['fn'])}, "
        f"y ~ {base_family(trace.nodes['y']['fn'])}; "
        f"log p(y, theta) = {float(trace.log_prob_sum()):.1f}"
    )

    # -- 2. Predictive with the adapted posterior's guide ------------------------------------
    post = learner.adapt(xs, ys)  # all T tasks at once: q(theta_t) = N(m_t, diag s_t^2)
    pred = post.predict(xq, num_samples=cfg.draws)
    predictive = Predictive(
        model, guide=post.guide, num_samples=cfg.draws, return_sites=["theta", "y"]
    )
    draws = predictive(xq)  # x with its task dimension: [T, Q, 1]
    y_draws = draws["y"]  # [S, T, Q, 1]
    standard_error = pred.std / math.sqrt(cfg.draws)
    gap = ((y_draws.mean(0) - pred.mean).abs() / standard_error).median()
    print(
        f"[2] {type(post.guide).__name__}: Predictive draws theta "
        f"{list(draws['theta'].shape)} and y {list(y_draws.shape)}; against post.predict: "
        f"median |mean gap| {float(gap):.2f} standard errors, "
        f"sd {float(y_draws.std(0).mean()):.3f} vs {float(pred.std.mean()):.3f}"
    )

    # -- 3. a Student-t likelihood as a distribution factory ---------------------------------
    # Started from the Gaussian learner's meta-parameters (the prior's mean, i.e. the network,
    # and its scales), then meta-trained further under the new likelihood. Heavy tails bound
    # the pull of large residuals, so from a random network it meta-learns far more slowly.
    student = bm.BayesianMAML(
        (1, 40, 40, 1), likelihood=lambda f: dist.StudentT(4.0, f, 0.3), inner_steps=5
    )
    student.net.load_state_dict(learner.net.state_dict())
    student.prior.load_state_dict(learner.prior.state_dict())
    student.meta_fit(source, iterations=cfg.variant_iterations, meta_batch_size=10, progress=False)
    y_site = pyro.poutine.trace(student.model).get_trace(xs[:1], ys[:1]).nodes["y"]["fn"]
    student_pred = student.adapt(xs, ys).predict(xq, num_samples=cfg.draws)
    print(
        f"[3] likelihood=lambda f: StudentT(4, f, 0.3): the y site is "
        f"{base_family(y_site)}; predictions score with it "
        f"(query NLL {float(bm.metrics.nll(student_pred, yq).mean()):.3f})"
    )

    # -- 4. a Laplace prior ---------------------------------------------------------------------
    laplace = bm.BayesianMAML((1, 40, 40, 1), prior=bm.priors.Laplace(), inner_steps=5)
    laplace.meta_fit(source, iterations=cfg.variant_iterations, meta_batch_size=10, progress=False)
    theta_site = pyro.poutine.trace(laplace.model).get_trace(xs[:1]).nodes["theta"]["fn"]
    laplace_pred = laplace.adapt(xs, ys).predict(xq, num_samples=cfg.draws)
    print(
        f"[4] prior=bm.priors.Laplace(): the theta site is {base_family(theta_site)} "
        f"{list(theta_site.batch_shape)} x {list(theta_site.event_shape)}, mean prior sd "
        f"{float(laplace.prior.stddev().detach().mean()):.4f}"
    )

    # -- 5. any Pyro autoguide at test time ----------------------------------------------------
    # bayesmeta fits one autoguide per task: over a batch, a multivariate autoguide would be
    # one joint Gaussian over all T x P weights.
    tic = time.perf_counter()
    guided = learner.adapt(xs, ys, guide=AutoLowRankMultivariateNormal, steps=cfg.guide_steps)
    guided_pred = guided.predict(xq, num_samples=cfg.draws)
    elbo = guided.elbo_trace
    assert elbo is not None
    print(
        f"[5] adapt(..., guide=AutoLowRankMultivariateNormal): {cfg.eval_tasks} tasks x "
        f"{cfg.guide_steps} SVI steps in {time.perf_counter() - tic:.1f} s; task 0's -ELBO "
        f"{float(elbo[:10].mean()):.1f} -> {float(elbo[-10:].mean()):.1f}"
    )

    # -- 6. NUTS on the same model, one task ----------------------------------------------------
    tic = time.perf_counter()
    mcmc = MCMC(
        NUTS(learner.adaptation_model(), max_tree_depth=cfg.nuts_depth),  # what adapt() uses
        num_samples=cfg.nuts_samples,
        warmup_steps=cfg.nuts_samples,
        disable_progbar=True,
    )
    mcmc.run(xs[:1], ys[:1])  # one task: x [1, K, 1]
    theta = mcmc.get_samples()["theta"]  # [S, 1, P]
    n_eff = mcmc.diagnostics()["theta"]["n_eff"]
    print(
        f"[6] NUTS on learner.adaptation_model(), task 0: {cfg.nuts_samples} draws after "
        f"{cfg.nuts_samples} warm-up steps in {time.perf_counter() - tic:.1f} s "
        f"(median n_eff {float(n_eff.median()):.0f})"
    )
    reference = nuts_prediction(learner, theta, xq[:1])
    one = {
        "inner loop q": learner.adapt(xs[0], ys[0]).predict(xq[0], num_samples=cfg.draws),
        "AutoLowRankMVN": bm.Prediction(
            guided_pred.function_samples[:, 0], guided_pred.noise_scale
        ),
        "NUTS": reference,
    }
    print(
        f"    predictive at task 0's {xq.shape[1]} query points "
        "(epistemic sd, predictive sd, |mean - NUTS mean|, NLL):"
    )
    for name, p in one.items():
        print(
            f"      {name:<15} {float(p.epistemic_std.mean()):.3f}  {float(p.std.mean()):.3f}"
            f"  {float((p.mean - reference.mean).abs().mean()):.3f}"
            f"  {float(bm.metrics.nll(p, yq[0])):.3f}"
        )

    rows = {
        "BayesianMAML (inner loop)": summarise(held_out_metrics(pred, yq)),
        "+ AutoLowRankMVN at test time": summarise(held_out_metrics(guided_pred, yq)),
        "Student-t likelihood": summarise(held_out_metrics(student_pred, yq)),
        "Laplace prior": summarise(held_out_metrics(laplace_pred, yq)),
    }
    print()
    print(
        format_table(
            rows,
            title=f"{cfg.eval_tasks} held-out sinusoid tasks, "
            "5 shots, 20 query points, mean ± 95% CI",
        )
    )
    print(
        f"(Student-t: {cfg.variant_iterations} iterations from the Gaussian learner's "
        f"meta-parameters; Laplace prior: {cfg.variant_iterations} from scratch)"
    )
    print()

    # -- 7. transfer: the same model with the prior centred on a source network -------------
    # The source network is fitted to one densely observed sinusoid; the target tasks are
    # sinusoids of similar amplitude and phase with 5 noisy points each.
    net = bm.nets.MLP((1, 40, 40, 1))
    x_src = torch.linspace(-5.0, 5.0, 200).unsqueeze(-1)
    y_src = 2.0 * torch.sin(x_src)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(1000):
        optimiser.zero_grad()
        (net(x_src) - y_src).pow(2).mean().backward()
        optimiser.step()
    targets = bm.Sinusoid(5, 20, amplitude=(1.0, 3.0), phase=(0.0, 1.0), noise_std=0.1, seed=3)
    related = targets.sample(10)
    transfer = bm.TransferLearner(net, steps=300, progress=False)
    transfer.fit_prior(related.support_x, related.support_y)  # prior scales per tensor
    tmodel = transfer.model
    theta_prior = pyro.poutine.trace(tmodel).get_trace(xs[:1]).nodes["theta"]["fn"].base_dist
    weights = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    centred = torch.allclose(theta_prior.loc[0], weights)
    scales = ", ".join(f"{float(s):.3f}" for s in transfer.prior_scale_)
    print(
        f"[7] TransferLearner(source).model: {tmodel}; theta ~ "
        f"{type(theta_prior).__name__} centred on the source weights: {centred}; "
        f"prior sd per tensor (fit_prior on 10 related tasks) {scales}"
    )
    target = targets.sample(cfg.eval_tasks)
    tpost = transfer.adapt(target.support_x, target.support_y)
    tpred = tpost.predict(target.query_x, num_samples=cfg.draws)
    tdraws = Predictive(tmodel, guide=tpost.guide, num_samples=cfg.draws, return_sites=["y"])(
        target.query_x
    )["y"]
    tgap = ((tdraws.mean(0) - tpred.mean).abs() / (tpred.std / math.sqrt(cfg.draws))).median()
    print(
        f"    Predictive(transfer.model, guide=post.guide) against post.predict: median "
        f"|mean gap| {float(tgap):.2f} standard errors, sd {float(tdraws.std(0).mean()):.3f}"
        f" vs {float(tpred.std.mean()):.3f}"
    )
    with torch.no_grad():
        unadapted = bm.Prediction.point(net(target.query_x))
    print(
        format_table(
            {
                "source network, not adapted": summarise(
                    {"mse": bm.metrics.mse(unadapted, target.query_y)}
                ),
                "TransferLearner (bayes)": summarise(held_out_metrics(tpred, target.query_y)),
            },
            title=f"{cfg.eval_tasks} target tasks, 5 shots, mean ± 95% CI",
        )
    )
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
