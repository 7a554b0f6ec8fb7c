"""A JAX floor for bayesmeta's MAML and Bayesian MAML meta-iterations (issue 18).

    pip install -e '.[floor]'                        # jax[cpu] and optax, benchmark-only
    python benchmarks/floor_jax.py                   # 3 rounds of 100 interleaved iterations
    python benchmarks/floor_jax.py --quick           # a smoke run, seconds
    python benchmarks/floor_jax.py --rounds 5 --iters 100

The same meta-iteration as bayesmeta's (sinusoid regression, T=25 tasks, K=10
support and 10 query points, 5 inner SGD steps of 0.01, 1-40-40-1 ReLU MLP,
Adam 1e-3 outer) written directly in JAX: one ``jax.jit``-compiled function per
learner, ``jax.vmap`` over the tasks, inner gradients by ``jax.grad`` (second
order by differentiating through them), Adam from optax. Learners:

- MAML (second order), FOMAML, Reptile (inner steps on support + query, the
  pseudo-gradient ``theta - mean_t phi_t`` to Adam, as ``bm.Reptile``);
- BayesianMAML with one reparameterised sample inside and outside: what
  ``bm.BayesianMAML(net, num_particles=1)`` computes on its fast path
  (Normal prior with a learned per-weight scale tied to the network's weights,
  Gaussian likelihood with a learned noise scale, ``q`` started at the prior,
  inner steps preconditioned by ``2 sigma^2``, a proximal step on the mean,
  the natural-gradient step on the precision, one normal draw rotated over
  the tasks from step to step, the closed-form KL, the query NLL plus
  ``KL / Q``).

Before timing, the script checks that both sides do the same work: from
bayesmeta's parameters and one batch (for BayesianMAML also the same normal
draws, taken from torch's generator as bayesmeta takes them) the JAX
meta-gradient must equal ``learner.meta_gradients(batch)``'s to float32
tolerance, at initialisation and after some meta-training; otherwise it exits
with status 1.

Timing: both sides on one thread (``torch.set_num_threads(1)``; XLA's CPU
backend without its Eigen thread pool), the learners' steps interleaved in one
process so that load from other jobs hits all alike, the first iterations of
each round (and JAX's compilation) excluded; the table gives the median over
rounds of each learner's median wall-clock and CPU ms per meta-iteration and of
the ratios. The bayesmeta side is ``learner.meta_step(batch)``, what users get
(it also checks the batch and, for BayesianMAML, folds the query errors into
its calibrated predictive noise); the JAX side's step returns the loss as a
float, which waits for the update.
"""

from __future__ import annotations

import os

# One thread for XLA's CPU backend; must be set before jax is imported.
_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_XLA_ONE_THREAD}".strip()

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

import bayesmeta as bm  # noqa: E402

try:
    import jax
    import jax.numpy as jnp
    import optax
except ImportError as err:  # pragma: no cover - exercised without the extra
    raise SystemExit(
        f"benchmarks/floor_jax.py needs JAX and optax ({err}); they are a benchmark-only "
        "extra, not a dependency of bayesmeta: pip install -e '.[floor]' "
        "(or pip install 'jax[cpu]' optax)"
    ) from err

NET = (1, 40, 40, 1)
TASKS, SHOTS, QUERY = 25, 10, 10
INNER_LR, INNER_STEPS, OUTER_LR = 0.01, 5, 1e-3
#: Float32 agreement of a meta-gradient, per tensor: max |jax - torch| <= ATOL + RTOL * max |torch|
#: (the "rel diff" is the left side over max |torch|; for Reptile max |weight| if larger).
RTOL, ATOL = 1e-4, 1e-7

Params = tuple[Any, ...]  # (W1, b1, ..., WL, bL) in nn.Linear's layout, as jax arrays
Batch = tuple[Any, Any, Any, Any]  # support x, y and query x, y: [T, N, 1] each


# -- the bayesmeta side ----------------------------------------------------------


def torch_learners() -> dict[str, bm.MetaLearner]:
    """bayesmeta's learners, as benchmarks/pyro_core_speed.py makes them (seeded)."""
    torch.manual_seed(0)
    common = {"inner_lr": INNER_LR, "inner_steps": INNER_STEPS, "outer_lr": OUTER_LR}
    return {
        "MAML": bm.MAML(NET, **common),
        "FOMAML": bm.MAML(NET, first_order=True, **common),
        "Reptile": bm.Reptile(NET, **common),
        "BayesianMAML": bm.BayesianMAML(NET, num_particles=1, **common),
    }


def sinusoid_batches(n: int = 10, seed: int = 0) -> list[bm.TaskBatch]:
    src = bm.Sinusoid(SHOTS, QUERY, seed=seed)
    return [src.sample(TASKS) for _ in range(n)]


def to_jax_batch(batch: bm.TaskBatch) -> Batch:
    sx, sy, qx, qy = (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
    return _array(sx), _array(sy), _array(qx), _array(qy)


def _array(t: torch.Tensor) -> Any:
    return jnp.asarray(t.detach().cpu().numpy())


def jax_params(learner: bm.MetaLearner) -> Any:
    """The learner's meta-parameters as a JAX pytree (copies)."""
    net = tuple(_array(p) for p in learner.fnet.params())
    if not isinstance(learner, bm.BayesianMAML):
        return net
    return {
        "net": net,
        "prior_log_scale": _array(learner.prior.log_scale_per_weight()),
        "noise_log_scale": _array(learner.likelihood.log_scale),
    }


def torch_grads(learner: bm.MetaLearner) -> Any:
    """The ``.grad`` that ``meta_gradients`` left, in :func:`jax_params`' layout."""

    def grad(p: torch.Tensor) -> Any:
        assert p.grad is not None
        return _array(p.grad)

    net = tuple(grad(p) for p in learner.fnet.params())
    if not isinstance(learner, bm.BayesianMAML):
        return net
    assert learner.prior.log_scale is not None
    return {
        "net": net,
        "prior_log_scale": grad(learner.prior.log_scale),
        "noise_log_scale": grad(learner.likelihood.log_scale),
    }


def check_supported(learner: bm.MetaLearner) -> None:
    """Refuse settings that the JAX versions below do not compute."""
    ok = not learner.units.fitted and learner.max_grad_norm is None
    if isinstance(learner, bm.BayesianMAML):
        from bayesmeta.model.likelihoods import GaussianLikelihood
        from bayesmeta.model.priors import Normal

        ok = (
            ok
            and isinstance(learner.prior, Normal)
            and learner.prior.scale_per == "weight"
            and isinstance(learner.likelihood, GaussianLikelihood)
            and learner.posterior == "gaussian"
            and learner.scale_update == "natural"
            and learner.inner_num_particles == 1
            and learner.num_particles == 1
            and learner.inner_steps <= TASKS  # one draw rotated over the tasks
            and not learner.first_order
        )
    elif isinstance(learner, bm.MAML | bm.Reptile):
        ok = (
            ok
            and (learner.inner_lr, learner.inner_steps) == (INNER_LR, INNER_STEPS)
            and learner.inner_lrs is None
            and learner.inner_grad_clip is None
            and learner.loss_name == "mse"
            and (not isinstance(learner, bm.Reptile) or learner.train_on == "all")
        )
    else:
        ok = False
    if not ok:
        raise SystemExit(
            f"the JAX floor does not compute this {type(learner).__name__}'s settings "
            "(see check_supported)"
        )


# -- the JAX side ----------------------------------------------------------------


def mlp(params: Params, x: Any) -> Any:
    """The 1-H-...-1 ReLU network on one task's inputs ``[N, D]``."""
    h = x
    layers = len(params) // 2
    for i in range(layers):
        h = h @ params[2 * i].T + params[2 * i + 1]
        if i < layers - 1:
            h = jax.nn.relu(h)  # derivative 0 at 0, as bayesmeta's
    return h


def mse(params: Params, x: Any, y: Any) -> Any:
    return jnp.mean((mlp(params, x) - y) ** 2)


def adapt(params: Params, x: Any, y: Any, *, first_order: bool, steps: int = INNER_STEPS) -> Params:
    """``steps`` SGD steps on one task's mean squared error (unrolled when jit-compiled)."""
    for _ in range(steps):
        g = jax.grad(mse)(params, x, y)
        if first_order:
            g = jax.lax.stop_gradient(g)
        params = jax.tree.map(lambda p, gi: p - INNER_LR * gi, params, g)
    return params


def maml_loss(
    params: Params, batch: Batch, *, first_order: bool = False, steps: int = INNER_STEPS
) -> Any:
    """Mean query MSE after adaptation, ``vmap`` over the tasks."""

    def task(sx: Any, sy: Any, qx: Any, qy: Any) -> Any:
        return mse(adapt(params, sx, sy, first_order=first_order, steps=steps), qx, qy)

    return jnp.mean(jax.vmap(task)(*batch))


def maml_direction(
    first_order: bool, steps: int = INNER_STEPS
) -> Callable[[Params, Batch], tuple[Any, Params]]:
    def direction(params: Params, batch: Batch) -> tuple[Any, Params]:
        return jax.value_and_grad(maml_loss)(params, batch, first_order=first_order, steps=steps)

    return direction


def reptile_direction(params: Params, batch: Batch) -> tuple[Any, Params]:
    """Reptile's pseudo-gradient ``theta - mean_t phi_t`` (inner steps on all points)."""
    sx, sy, qx, qy = batch
    x, y = jnp.concatenate([sx, qx], 1), jnp.concatenate([sy, qy], 1)
    phi = jax.vmap(lambda xi, yi: adapt(params, xi, yi, first_order=True))(x, y)
    loss = jnp.mean(jax.vmap(mse)(phi, qx, qy))
    return loss, jax.tree.map(lambda p, a: p - a.mean(0), params, phi)


@dataclass(frozen=True)
class BMAMLSettings:
    inner_lr: float = INNER_LR
    inner_steps: int = INNER_STEPS
    kl_weight: float = 1.0
    scale_rate: float = 0.5

    @classmethod
    def of(cls, learner: bm.BayesianMAML) -> BMAMLSettings:
        return cls(learner.inner_lr, learner.inner_steps, learner.kl_weight, learner.scale_rate)


def _flatten(params: Params) -> Any:
    return jnp.concatenate([p.reshape(-1) for p in params])


def _unflatten(flat: Any, like: Params) -> Params:
    out, start = [], 0
    for p in like:
        out.append(flat[start : start + p.size].reshape(p.shape))
        start += p.size
    return tuple(out)


def bmaml_loss(meta: Any, batch: Batch, base: Any, eps_out: Any, cfg: BMAMLSettings) -> Any:
    """BayesianMAML's meta-loss with one sample: query NLL + kl_weight * KL / Q, mean over tasks.

    ``base`` ``[T, P]`` is the inner steps' normal draw (task ``t`` uses row
    ``t - i`` at step ``i``), ``eps_out`` ``[T, P]`` the query sample's.
    """
    sx, sy, qx, qy = batch
    k, q = sx.shape[1], qx.shape[1]
    net = meta["net"]
    mu = _flatten(net)
    p_ls, n_ls = meta["prior_log_scale"], meta["noise_log_scale"]
    rate = cfg.scale_rate
    step = cfg.inner_lr * 2.0 * jnp.exp(2.0 * n_ls).mean()  # lr * the likelihood's 2 sigma^2
    p_prec = jnp.exp(-2.0 * p_ls)
    grow = step * cfg.kl_weight / k
    a = grow * p_prec
    keep = 1.0 / (1.0 + a)  # the proximal step on the mean
    pull = (1.0 - keep) * mu
    inv_var = jnp.exp(-2.0 * n_ls)

    def data_grad(theta: Any, x: Any, y: Any) -> Any:
        """``step * d(mean Gaussian NLL) / d theta`` on one task (differentiable)."""

        def scaled_nll(th: Any) -> Any:
            z2 = (y - mlp(_unflatten(th, net), x)) ** 2 * inv_var
            return step * jnp.mean(jnp.sum(0.5 * z2, -1))

        return jax.grad(scaled_nll)(theta)

    def task(x: Any, y: Any, xq: Any, yq: Any, eps: Any, e_out: Any) -> Any:
        loc, prec = mu, p_prec
        for i in range(cfg.inner_steps):
            scale = jnp.exp(p_ls) if i == 0 else jax.lax.rsqrt(prec)
            noise = scale * eps[i]
            g = data_grad(loc + noise, x, y)
            loc = keep * (loc - g) + pull
            curvature = jax.nn.relu(g * noise * prec)  # step * h, clipped at 0
            kept = p_prec if i == 0 else rate * p_prec + (1.0 - rate) * prec
            prec = kept + curvature * (rate / grow)
        log_scale = -0.5 * jnp.log(prec)
        out = mlp(_unflatten(loc + jnp.exp(log_scale) * e_out, net), xq)
        z = (yq - out) * jnp.exp(-n_ls)
        nll = jnp.mean(jnp.sum(0.5 * z * z + n_ls + 0.5 * math.log(2 * math.pi), -1))
        diff = loc - mu
        quad = jnp.dot(jnp.exp(2.0 * log_scale) + diff * diff, p_prec)
        kl = 0.5 * (quad - mu.shape[0]) + p_ls.sum() - log_scale.sum()
        return nll + cfg.kl_weight * kl / q

    eps = jnp.stack([jnp.roll(base, i, axis=0) for i in range(cfg.inner_steps)], axis=1)
    return jnp.mean(jax.vmap(task)(sx, sy, qx, qy, eps, eps_out))


def bmaml_direction(cfg: BMAMLSettings) -> Callable[[Any, Batch, Any], tuple[Any, Any]]:
    def direction(meta: Any, batch: Batch, key: Any) -> tuple[Any, Any]:
        k1, k2 = jax.random.split(key)
        shape = (batch[0].shape[0], _flatten(meta["net"]).shape[0])
        base, eps_out = jax.random.normal(k1, shape), jax.random.normal(k2, shape)
        return jax.value_and_grad(bmaml_loss)(meta, batch, base, eps_out, cfg)

    return direction


class JaxLearner:
    """Parameters and Adam state, stepped by one jitted function (shared between instances)."""

    def __init__(self, step: Callable[..., Any], params: Any, *, random: bool) -> None:
        self._step = step
        self.params = params
        self.opt_state = OPTIMIZER.init(params)
        self.key = jax.random.key(0) if random else None

    def meta_step(self, batch: Batch) -> float:
        if self.key is None:
            self.params, self.opt_state, loss = self._step(self.params, self.opt_state, batch)
        else:
            self.params, self.opt_state, self.key, loss = self._step(
                self.params, self.opt_state, self.key, batch
            )
        return float(loss)  # waits for the update, as bayesmeta's meta_step returns a float


OPTIMIZER = optax.adam(OUTER_LR)  # torch.optim.Adam's defaults: betas (0.9, 0.999), eps 1e-8


def jitted_step(direction: Callable[..., tuple[Any, Any]], *, random: bool) -> Callable[..., Any]:
    if random:

        def step_random(params: Any, opt_state: Any, key: Any, batch: Batch) -> Any:
            key, sub = jax.random.split(key)
            loss, grads = direction(params, batch, sub)
            updates, opt_state = OPTIMIZER.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, key, loss

        return jax.jit(step_random)

    def step(params: Any, opt_state: Any, batch: Batch) -> Any:
        loss, grads = direction(params, batch)
        updates, opt_state = OPTIMIZER.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step)


# -- same work: the meta-gradients agree -------------------------------------------


@dataclass
class Agreement:
    learner: str
    state: str
    loss_torch: float
    loss_jax: float
    max_abs_diff: float
    max_rel_diff: float
    ok: bool


#: The directions the timed steps take, jitted as they are there (compiled on first use).
_CHECKED: dict[str, Callable[..., Any]] = {
    "MAML": jax.jit(maml_direction(False)),
    "FOMAML": jax.jit(maml_direction(True)),
    "Reptile": jax.jit(reptile_direction),
    "BayesianMAML": jax.jit(jax.value_and_grad(bmaml_loss), static_argnums=4),
}


def compare(
    learner_name: str, state: str, learner: bm.MetaLearner, batch: bm.TaskBatch
) -> Agreement:
    """``learner.meta_gradients(batch)`` against the JAX meta-gradient at the same parameters."""
    check_supported(learner)
    params, jb = jax_params(learner), to_jax_batch(batch)
    if isinstance(learner, bm.BayesianMAML):
        # bayesmeta draws the inner steps' [T, P] noise, then the query sample's [1, T, P],
        # from torch's global generator; take the same draws after the same seed.
        torch.manual_seed(1234)
        loss_t = learner.meta_gradients(batch)
        torch.manual_seed(1234)
        shape = (len(batch), learner.fnet.num_params)
        base = torch.empty(shape).normal_()
        eps_out = torch.empty((1, *shape)).normal_()[0]
        loss_j, grads_j = _CHECKED["BayesianMAML"](
            params, jb, _array(base), _array(eps_out), BMAMLSettings.of(learner)
        )
    elif isinstance(learner, bm.Reptile):
        loss_t = learner.meta_gradients(batch)
        loss_j, grads_j = _CHECKED["Reptile"](params, jb)
    else:
        assert isinstance(learner, bm.MAML)
        loss_t = learner.meta_gradients(batch)
        loss_j, grads_j = _CHECKED["FOMAML" if learner.first_order else "MAML"](params, jb)
    grads_t = torch_grads(learner)
    # Reptile's direction theta - mean_t phi_t is a difference of weights: its rounding
    # error scales with the weights, not with the (small) difference.
    size = jax.tree.leaves(params) if isinstance(learner, bm.Reptile) else None
    learner.optimizer.zero_grad(set_to_none=True)
    ok = math.isclose(loss_t, float(loss_j), rel_tol=RTOL, abs_tol=ATOL)
    worst_abs = worst_rel = 0.0
    leaves_t, leaves_j = jax.tree.leaves(grads_t), jax.tree.leaves(grads_j)
    for i, (gt, gj) in enumerate(zip(leaves_t, leaves_j, strict=True)):
        scale = float(jnp.max(jnp.abs(gt)))
        if size is not None:
            scale = max(scale, float(jnp.max(jnp.abs(size[i]))))
        diff = float(jnp.max(jnp.abs(gt - gj)))
        ok = ok and diff <= ATOL + RTOL * scale
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, diff / max(scale, 1e-30))
    return Agreement(learner_name, state, loss_t, float(loss_j), worst_abs, worst_rel, ok)


def gradient_check(train_steps: int = 50) -> list[Agreement]:
    """The four learners' meta-gradients, torch against JAX, at initialisation and after training.

    The trained state is ``train_steps`` bayesmeta meta-steps on other batches,
    where the learned prior scale, noise scale and weights have moved.
    """
    torch.set_num_threads(1)
    learners = torch_learners()
    (check_batch,) = sinusoid_batches(1, seed=1)
    train = sinusoid_batches(10, seed=2)
    rows = []
    for name, learner in learners.items():
        rows.append(compare(name, "init", learner, check_batch))
        for i in range(train_steps):
            learner.meta_step(train[i % len(train)])
        rows.append(compare(name, f"after {train_steps} steps", learner, check_batch))
    return rows


# -- timing -----------------------------------------------------------------------------

NAMES = ("MAML", "FOMAML", "Reptile", "BayesianMAML")


def jax_steps(learners: dict[str, bm.MetaLearner]) -> dict[str, Callable[..., Any]]:
    bmaml = learners["BayesianMAML"]
    assert isinstance(bmaml, bm.BayesianMAML)
    return {
        "MAML": jitted_step(maml_direction(False), random=False),
        "FOMAML": jitted_step(maml_direction(True), random=False),
        "Reptile": jitted_step(reptile_direction, random=False),
        "BayesianMAML": jitted_step(bmaml_direction(BMAMLSettings.of(bmaml)), random=True),
    }


def one_round(
    iters: int, steps: dict[str, Callable[..., Any]], warmup: int = 3
) -> dict[str, tuple[float, float]]:
    """``{"bayesmeta MAML": (wall ms, CPU ms), "JAX MAML": ..., ...}``: medians, interleaved."""
    batches = sinusoid_batches(10)
    jbatches = [to_jax_batch(b) for b in batches]
    learners = torch_learners()
    fns: dict[str, tuple[Callable[[Any], float], Sequence[Any]]] = {}
    for name in NAMES:
        learner = learners[name]
        check_supported(learner)
        jl = JaxLearner(steps[name], jax_params(learner), random=name == "BayesianMAML")
        fns[f"bayesmeta {name}"] = (learner.meta_step, batches)
        fns[f"JAX {name}"] = (jl.meta_step, jbatches)
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(iters + warmup):
        for name, (fn, data) in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            loss = fn(data[i % len(data)])
            t1, c1 = time.perf_counter(), time.process_time()
            if not math.isfinite(loss):
                raise SystemExit(f"{name}: the meta-loss is not finite ({loss})")
            if i >= warmup:
                wall[name].append(t1 - t0)
                cpu[name].append(c1 - c0)
    return {
        name: (statistics.median(wall[name]) * 1e3, statistics.median(cpu[name]) * 1e3)
        for name in fns
    }


def table(results: list[dict[str, tuple[float, float]]], iters: int) -> str:
    def med(f: Callable[[dict[str, tuple[float, float]]], float]) -> float:
        return statistics.median(f(r) for r in results)

    lines = [
        f"JAX floor, ms per meta-iteration (median of {len(results)} round(s) of {iters} "
        f"interleaved iterations; jax {jax.__version__}, torch {torch.__version__}, 1 thread)",
        "",
        "| meta-iteration | bayesmeta ms | JAX ms | bayesmeta / JAX | bayesmeta CPU ms "
        "| JAX CPU ms | CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in NAMES:
        b, j = f"bayesmeta {name}", f"JAX {name}"
        label = "BayesianMAML (1 sample)" if name == "BayesianMAML" else name
        lines.append(
            f"| {label} | {med(lambda r, b=b: r[b][0]):.2f} | {med(lambda r, j=j: r[j][0]):.2f} "
            f"| {med(lambda r, b=b, j=j: r[b][0] / r[j][0]):.2f} "
            f"| {med(lambda r, b=b: r[b][1]):.2f} | {med(lambda r, j=j: r[j][1]):.2f} "
            f"| {med(lambda r, b=b, j=j: r[b][1] / r[j][1]):.2f} |"
        )
    maml_ratio = med(lambda r: r["bayesmeta MAML"][0] / r["JAX MAML"][0])
    bm_ratio = med(lambda r: r["bayesmeta BayesianMAML"][0] / r["bayesmeta MAML"][0])
    jax_ratio = med(lambda r: r["JAX BayesianMAML"][0] / r["JAX MAML"][0])

    def verdict(x: float, target: float) -> str:
        return "met" if x <= target else "**missed**"

    lines += [
        "",
        "| ratio (wall clock) | value | target (issue 18) |",
        "|---|---:|---|",
        f"| bayesmeta MAML / JAX MAML | {maml_ratio:.2f} | <= 1.2: {verdict(maml_ratio, 1.2)} |",
        f"| bayesmeta BayesianMAML / bayesmeta MAML | {bm_ratio:.2f} "
        f"| <= 1.5: {verdict(bm_ratio, 1.5)} |",
        f"| JAX BayesianMAML / JAX MAML | {jax_ratio:.2f} | (the floor's own) |",
    ]
    return "\n".join(lines)


def print_check(rows: list[Agreement]) -> bool:
    print("Same work: meta-gradient, bayesmeta (torch float32) against JAX (float32)\n")
    print("| learner | state | loss torch | loss JAX | max abs diff | max rel diff | agree |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r.learner} | {r.state} | {r.loss_torch:.6f} | {r.loss_jax:.6f} "
            f"| {r.max_abs_diff:.2e} | {r.max_rel_diff:.2e} | {'yes' if r.ok else 'NO'} |"
        )
    return all(r.ok for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=100, help="interleaved iterations per round")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rounds, iters = (1, 3) if args.quick else (args.rounds, args.iters)

    agree = print_check(gradient_check(train_steps=5 if args.quick else 50))
    if not agree:
        print("\nFAILED: the JAX and bayesmeta meta-gradients differ", file=sys.stderr)
        return 1

    steps = jax_steps(torch_learners())
    results = [one_round(iters, steps) for _ in range(rounds)]  # round 1 compiles in warm-up
    print()
    print(table(results, iters))
    return 0


if __name__ == "__main__":
    sys.exit(main())
