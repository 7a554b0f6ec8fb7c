"""bayesmeta's metric learners beside easyfsl 1.5 on the same episodes (issue 18 item 5).

    PYTHONPATH=. /work/venv_peers/bin/python benchmarks/easyfsl_peer.py          # full run
    PYTHONPATH=. /work/venv_peers/bin/python benchmarks/easyfsl_peer.py --quick  # smoke run

easyfsl is a benchmark-only peer: never a dependency of bayesmeta, never imported by the
package or its tests. It imports torchvision when it is imported, so it lives in its own
virtual environment (the ``peers`` extra installs it)::

    python3.11 -m venv /work/venv_peers
    /work/venv_peers/bin/pip install torch==2.13.0            # the CPU build first
    /work/venv_peers/bin/pip install --no-deps torchvision==0.28.0 easyfsl==1.5.0
    /work/venv_peers/bin/pip install torch==2.13.0 -e ".[data,peers]"

PyPI's torchvision 0.28.0 wheel is built against CUDA torch: its compiled operators do not load
beside the CPU torch, and its ``_meta_registrations`` module then fails on import. Neither
library's code here uses a torchvision operator (easyfsl imports ``torchvision.models.resnet``
for its ResNet backbones, which an MLP backbone never builds), so when that happens the
benchmark skips only that registration module (:func:`import_easyfsl` says so on stderr).

What is compared, on glyphs (a generated Omniglot-like alphabet, 28x28 images flattened to 784
features) and scikit-learn's digits (8x8, flattened to 64), 5-way 1-shot and 5-shot, 15 query
points per class, with the same MLP backbone (``--hidden`` widths, the same initial weights
copied into both libraries), Adam at the same learning rate and one episode per update
(bayesmeta's ``meta_step`` with its default Adam, easyfsl's tutorial loop with
``torch.optim.Adam(params, lr)``, torch's defaults; foreach and the default loop took 133 and
142 us a step for this MLP's four weight tensors):

- ProtoNet and BayesianProtoNet against easyfsl's ``PrototypicalNetworks``;
- MatchingNet with full context embeddings (a bidirectional LSTM over the support set and an
  attention LSTM read ``K`` times, ``K`` the support size, as easyfsl does) against easyfsl's
  ``MatchingNetworks`` (always full context); and bayesmeta's default MatchingNet (cosine
  attention, no LSTMs) against the same peer.

Per learner: the time of one training step (forward, backward, optimiser step) and of one
test-time prediction (adapt to the support set and predict the query set), each the median of
three interleaved repeats of ``--time-episodes`` episodes; the ratio is bayesmeta's time over
easyfsl's (below 1: bayesmeta is faster). Then accuracy after the same ``--train-episodes``
training episodes (the same episodes in the same order), mean ± 95% CI over the same test
episodes of held-out classes.

Before timing, the script checks that the two compute the same thing where they are the same
model: ProtoNet's logits are minus the squared distances to easyfsl's prototypes (easyfsl uses
the unsquared distance, the only difference), and the full-context support embeddings of both
Matching Networks agree when they share the bidirectional LSTM's weights.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import bayesmeta as bm
from bayesmeta.tasks import Episodes, load_digits, make_glyphs, split_classes
from bayesmeta.tasks.task import TaskBatch

LR = 1e-3


def import_easyfsl() -> types.ModuleType:
    """``easyfsl.methods``, importing torchvision without its CUDA-only meta registrations."""
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations"
        )
        import torchvision  # noqa: F401

        print(
            "note: torchvision's compiled operators do not load with this torch "
            f"({err}); imported it without its meta registrations (no operator of it is used)",
            file=sys.stderr,
        )
    import easyfsl.methods

    return easyfsl.methods


@dataclass
class Data:
    """Training and test episodes of one data set and shot count, as both libraries read them."""

    train: list[TaskBatch]
    test: list[TaskBatch]
    features: int


def make_data(name: str, shots: int, train: int, test: int, seed: int) -> Data:
    """Pre-drawn 5-way episodes (one task each) over disjoint train and test classes."""
    if name == "glyphs":
        x, labels = make_glyphs(100, 20, 28, seed=seed)
        train_cls, _, test_cls = split_classes(labels, (0.64, 0.16, 0.2), seed=seed)
    else:
        x, labels = load_digits()
        train_cls, test_cls = list(range(5)), list(range(5, 10))
    x = x.flatten(1)
    src = Episodes(x, labels, 5, shots, 15, classes=train_cls, seed=seed)
    tst = Episodes(x, labels, 5, shots, 15, classes=test_cls, seed=seed + 1)
    return Data(
        [src.sample(1) for _ in range(train)], [tst.sample(1) for _ in range(test)], x.shape[1]
    )


# -- the two libraries' steps -----------------------------------------------------------------


class Pair:
    """A bayesmeta learner and an easyfsl model with the same backbone, stepped alike."""

    def __init__(self, name: str, learner: bm.MetaLearner, peer: nn.Module, peer_loss: str):
        self.name, self.learner, self.peer = name, learner, peer
        # easyfsl's tutorial loop: Adam(params, lr) with torch's defaults.
        self.opt = torch.optim.Adam(peer.parameters(), lr=LR)
        self.loss = nn.CrossEntropyLoss() if peer_loss == "ce" else nn.NLLLoss()

    # bayesmeta: meta_step on a batch of one task; adapt + predict.
    def bm_train(self, batch: TaskBatch) -> None:
        self.learner.meta_step(batch)

    def bm_predict(self, batch: TaskBatch) -> Tensor:
        pred = self.learner.adapt(batch.support_x[0], batch.support_y[0], 5)
        return pred.predict(batch.query_x[0]).sample_log_probs[0]  # [Q, N]

    # easyfsl: the training loop of its tutorials, one episode per update.
    def peer_train(self, batch: TaskBatch) -> None:
        self.peer.train()
        self.peer.process_support_set(batch.support_x[0], batch.support_y[0])
        loss = self.loss(self.peer(batch.query_x[0]), batch.query_y[0])
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def peer_predict(self, batch: TaskBatch) -> Tensor:
        self.peer.eval()
        with torch.no_grad():
            self.peer.process_support_set(batch.support_x[0], batch.support_y[0])
            return self.peer(batch.query_x[0])


LEARNERS = ("ProtoNet", "BayesianProtoNet", "MatchingNet", "MatchingNet (FCE)")


def make_pairs(
    methods: Any, features: int, hidden: tuple[int, ...], shots: int, names: Sequence[str]
) -> list[Pair]:
    """The learner pairs, each side starting from the same backbone weights."""
    widths = (features, *hidden)
    e = widths[-1]
    pairs = []
    for name in names:
        torch.manual_seed(0)
        if name == "ProtoNet":
            learner: bm.MetaLearner = bm.ProtoNet(widths, outer_lr=LR)
        elif name == "BayesianProtoNet":
            learner = bm.BayesianProtoNet(widths, outer_lr=LR)
        elif name == "MatchingNet":
            learner = bm.MatchingNet(widths, outer_lr=LR)
        else:
            learner = bm.MatchingNet(
                widths, full_context=True, processing_steps=5 * shots, outer_lr=LR
            )
        backbone = copy.deepcopy(learner.net)
        if name.startswith("Matching"):
            peer = methods.MatchingNetworks(backbone, feature_dimension=e)
            if learner.support_lstm is not None:
                peer.support_features_encoder.load_state_dict(learner.support_lstm.state_dict())
            pairs.append(Pair(name, learner, peer, "nll"))
        else:
            pairs.append(Pair(name, learner, methods.PrototypicalNetworks(backbone), "ce"))
    return pairs


def check_same_work(pair: Pair, batch: TaskBatch) -> float:
    """Largest difference between the quantities both libraries compute for one episode."""
    sx, sy, qx = batch.support_x[0], batch.support_y[0], batch.query_x[0]
    learner, peer = pair.learner, pair.peer
    with torch.no_grad():
        peer.process_support_set(sx, sy)
        (zs, zq) = learner.embed(sx[None], qx[None])
        if isinstance(learner, bm.ProtoNet):
            ours = learner.logits(learner._context(learner._episode(zs, sy[None], 5)), zq)[0]
            theirs = -peer(qx).pow(2)
            return float((ours - theirs).abs().max())
        if isinstance(learner, bm.MatchingNet) and learner.full_context:
            memory = learner._context(learner._episode(zs, sy[None], 5))
            return float((memory.g[0] - peer.contextualized_support_features).abs().max())
    return 0.0


# -- timing and accuracy ----------------------------------------------------------------------


def per_episode_ms(fn: Callable[[TaskBatch], Any], episodes: list[TaskBatch]) -> float:
    start = time.perf_counter()
    for batch in episodes:
        fn(batch)
    return 1e3 * (time.perf_counter() - start) / len(episodes)


def timed(pair: Pair, data: Data, n: int) -> dict[str, float]:
    """Median of three interleaved repeats of training steps and of test-time predictions."""
    pair = copy.deepcopy(pair)  # timing steps must not train the pair scored for accuracy
    train, test = data.train[:n], data.test[:n]
    runs: dict[str, list[float]] = {
        k: [] for k in ("bm_train", "peer_train", "bm_pred", "peer_pred")
    }
    for fn in (pair.bm_train, pair.peer_train, pair.bm_predict, pair.peer_predict):
        fn(train[0])  # warm-up (first-call allocations, the optimisers' state)
    for _ in range(3):
        runs["bm_train"].append(per_episode_ms(pair.bm_train, train))
        runs["peer_train"].append(per_episode_ms(pair.peer_train, train))
        runs["bm_pred"].append(per_episode_ms(pair.bm_predict, test))
        runs["peer_pred"].append(per_episode_ms(pair.peer_predict, test))
    return {k: statistics.median(v) for k, v in runs.items()}


def accuracy(predict: Callable[[TaskBatch], Tensor], test: list[TaskBatch]) -> tuple[float, float]:
    """Mean accuracy over episodes and its 95% CI half-width."""
    accs = [float((predict(b).argmax(-1) == b.query_y[0]).double().mean()) for b in test]
    half = 1.96 * statistics.stdev(accs) / len(accs) ** 0.5 if len(accs) > 1 else float("nan")
    return 100 * statistics.fmean(accs), 100 * half


def run(args: argparse.Namespace) -> None:
    methods = import_easyfsl()
    hidden = tuple(args.hidden)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); MLP hidden {hidden}")
    print(
        "| data | shots | learner | train step ms (bm / easyfsl) | ratio | "
        "prediction ms (bm / easyfsl) | ratio | accuracy % bm | accuracy % easyfsl |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets:
        for shots in args.shots:
            data = make_data(dataset, shots, args.train_episodes, args.test_episodes, args.seed)
            for pair in make_pairs(methods, data.features, hidden, shots, args.learners):
                gap = check_same_work(pair, data.test[0])
                if gap > 1e-4:
                    raise AssertionError(f"{pair.name}: the two libraries differ by {gap:.2e}")
                t = timed(pair, data, args.time_episodes)
                for batch in data.train:
                    pair.bm_train(batch)
                    pair.peer_train(batch)
                acc_bm, ci_bm = accuracy(pair.bm_predict, data.test)
                acc_peer, ci_peer = accuracy(pair.peer_predict, data.test)
                peer = type(pair.peer).__name__
                print(
                    f"| {dataset} | {shots} | {pair.name} vs {peer} | "
                    f"{t['bm_train']:.3f} / {t['peer_train']:.3f} | "
                    f"{t['bm_train'] / t['peer_train']:.2f} | "
                    f"{t['bm_pred']:.3f} / {t['peer_pred']:.3f} | "
                    f"{t['bm_pred'] / t['peer_pred']:.2f} | "
                    f"{acc_bm:.2f} ± {ci_bm:.2f} | {acc_peer:.2f} ± {ci_peer:.2f} |",
                    flush=True,
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    parser.add_argument("--datasets", nargs="+", default=["glyphs", "digits"])
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=LEARNERS)
    parser.add_argument("--hidden", nargs="+", type=int, default=[64, 64])
    parser.add_argument("--train-episodes", type=int, default=2000)
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--time-episodes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.shots = ["digits"], [1]
        args.train_episodes, args.test_episodes, args.time_episodes = 40, 20, 20
    torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
