"""Image learners on a laptop: --quick wall times, Bayesian MAML / MAML, peak memory.

    python benchmarks/image_learners.py                 # everything (about an hour on 2 cores)
    python benchmarks/image_learners.py --quick         # one learner per family, minutes
    python benchmarks/image_learners.py --only ratio    # or: quick, memory
    python benchmarks/image_learners.py --threads 2     # torch threads per run (default 1)

Three targets (issue 18 item 3, issue 19 item 4), each a table:

quick
    ``bayesmeta run --quick`` of every learner on every built-in data source, each in
    its own process: wall time (target: under 60 s on 2 CPU cores) and peak resident
    memory. ``table`` runs on the shipped ChickWeight table (its config's columns),
    ``transfer`` on the shipped source network, ``image_folder`` on a folder of PNGs
    written from the glyph alphabet (30 classes of 20 images).
ratio
    One Bayesian MAML meta-iteration over one MAML meta-iteration on the shipped glyph
    configs' settings (Conv4 of 32 channels on 28x28 glyphs, 5-way 1-shot, 15 query
    images, 1 inner step, 8 tasks): interleaved in one process, median of three
    (target: at most 2x).
memory
    Peak resident memory (``resource.getrusage`` ``ru_maxrss`` of a child process) of a
    short run of every shipped config in examples/configs/: its own settings, with at most
    5 meta-iterations and 20 held-out tasks (two evaluation chunks of an image run), so the
    peak of meta-training and of evaluation are both reached (target: at most 1 GB).

Timings on a shared machine are noisy; ``--threads`` sets torch's CPU threads of every run
(the command line's ``--threads``). On 2 cores shared with other jobs, 1 thread was up to
12x faster than torch's default of 2 (OpenMP threads waiting on each other).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = ROOT / "examples" / "configs"

GRADIENT = ("maml", "fomaml", "reptile", "bayesian_maml", "variational")
METRIC = ("protonet", "bayesian_protonet", "matching")
REGRESSION_DATA = ("sinusoid", "sinusoid_or_line", "table")
IMAGE_DATA = ("glyphs", "digits", "image_folder")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _child(args: list[str]) -> tuple[float, float, int]:
    """Run ``python args`` in a child process: (wall s, its peak RSS MB, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        print(err[-2000:], file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def _image_folder(root: Path) -> Path:
    """Write 30 glyph classes of 20 PNGs each under ``root/class_i/`` (6 held out)."""
    from PIL import Image

    from bayesmeta.tasks.glyphs import make_glyphs

    x, labels = make_glyphs(30, 20, seed=1)
    for i, (img, label) in enumerate(zip(x, labels, strict=True)):
        folder = root / f"class_{int(label):02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (img[0] * 255).round().byte().numpy()
        Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
    return root


_TABLE = f"""data = "table"
path = "{ROOT / "examples" / "data" / "chickweight.csv"}"
group = "chick"
x = ["day"]
y = "weight_100g"
order_by = "time"
k_support = 4
"""


def _quick_args(learner: str, data: str, folder: Path) -> list[str] | None:
    """The ``bayesmeta run --quick`` arguments of a combination (``None``: not a valid one)."""
    if learner in METRIC and data not in IMAGE_DATA:
        return None
    if learner == "transfer":
        if data != "sinusoid":  # its source network is an MLP on 1-D inputs
            return None
        return [str(CONFIGS / "transfer_sinusoid.toml")]
    if data == "table":  # the ChickWeight table of the shipped config, the learner's defaults
        table = folder.parent / "table.toml"
        table.write_text(_TABLE)
        return [str(table), "--learner", learner]
    args = ["--learner", learner, "--data", data]
    if data == "image_folder":
        args += ["--path", str(folder)]
    return args


def quick_table(learners: tuple[str, ...], datas: tuple[str, ...], threads: int) -> list[str]:
    rows = ["| learner | data | wall s | peak RSS MB | under 60 s |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = _image_folder(Path(tmp) / "images")
        for learner in learners:
            for data in datas:
                args = _quick_args(learner, data, folder)
                if args is None:
                    continue
                cmd = ["-m", "bayesmeta.cli.main", "run", *args, "--quick", "--no-progress"]
                cmd += ["--threads", str(threads), "--out", str(Path(tmp) / "runs")]
                wall, peak, code = _child(cmd)
                ok = "error" if code else ("yes" if wall < 60 else "NO")
                rows.append(f"| {learner} | {data} | {wall:.1f} | {peak:.0f} | {ok} |")
                print(rows[-1], flush=True)
    return rows


def ratio_table(threads: int, repeats: int = 3) -> list[str]:
    import torch

    import bayesmeta.runs.learners  # noqa: F401  (registers the learners)
    from bayesmeta.runs.config import RunConfig

    torch.set_num_threads(threads)
    settings = dict(
        data="glyphs", n_way=5, k_support=1, k_query=15, meta_batch_size=8, channels=32,
        inner_lr=0.4, inner_steps=1, adapt_steps=1, outer_lr=0.003,
    )  # fmt: skip
    maml = RunConfig(learner="maml", **settings)  # type: ignore[arg-type]
    bmaml = RunConfig(
        learner="bayesian_maml",
        prior_scale=0.003,
        kl_weight=3e-4,
        **settings,  # type: ignore[arg-type]
    )
    learners = {"maml": maml.build_learner(), "bayesian_maml": bmaml.build_learner()}
    # the same learner with one sample in the outer objective instead of its default 8:
    # how much of the ratio is the 8 sampled query forward passes
    learners["bayesian_maml_s1"] = bmaml.build_learner()
    learners["bayesian_maml_s1"].outer_samples = 1
    batch = maml.train_source().sample(8)
    times: dict[str, list[float]] = {name: [] for name in learners}
    for learner in learners.values():  # warm-up
        learner.meta_step(batch)
    for _ in range(repeats):
        for name, learner in learners.items():
            t0 = time.perf_counter()
            learner.meta_step(batch)
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    rows = ["| learner | meta-iteration s | / MAML | at most 2x |", "|---|---|---|---|"]
    for name, label in (
        ("maml", "MAML"),
        ("bayesian_maml", "Bayesian MAML (outer_samples=8, its default)"),
        ("bayesian_maml_s1", "Bayesian MAML, outer_samples=1"),
    ):
        ratio = med[name] / med["maml"]
        ok = "-" if name == "maml" else ("yes" if ratio <= 2 else "NO")
        rows.append(f"| {label} | {med[name]:.3f} | {ratio:.2f} | {ok} |")
    return rows


_MEMORY_CHILD = """
import resource, sys, tempfile
from dataclasses import replace
import torch
torch.set_num_threads(int(sys.argv[2]))
import bayesmeta.runs.learners
from bayesmeta.runs.config_file import read_config, parse_config
from bayesmeta.runs.experiment import run_experiment
config = parse_config(read_config(sys.argv[1]), source=sys.argv[1])
config = replace(
    config, iterations=min(config.meta_iterations, 5), eval_tasks=min(config.eval_tasks, 20)
)
with tempfile.TemporaryDirectory() as tmp:
    run_experiment(config, out_dir=tmp, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory_table(threads: int) -> list[str]:
    rows = ["| config | peak RSS MB | at most 1 GB |", "|---|---|---|"]
    for path in sorted(CONFIGS.glob("*.toml")):
        if "image_folder" in path.name:
            continue  # needs your own folder; the quick table runs image_folder
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(path), str(threads)],
            env=_env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode:
            print(done.stderr[-2000:], file=sys.stderr)
            rows.append(f"| {path.name} | error | - |")
        else:
            peak = int(done.stdout.split()[-1]) / 1024
            rows.append(f"| {path.name} | {peak:.0f} | {'yes' if peak <= 1024 else 'NO'} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one learner of each family")
    parser.add_argument("--only", choices=("quick", "ratio", "memory"), default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    args = parser.parse_args()
    learners = ("maml", "bayesian_maml", "protonet") if args.quick else (
        *GRADIENT, *METRIC, "transfer"
    )  # fmt: skip
    datas = ("glyphs", "digits") if args.quick else (*REGRESSION_DATA, *IMAGE_DATA)
    if args.only in (None, "ratio"):
        print("\n".join(["", "Bayesian MAML / MAML meta-iteration", *ratio_table(args.threads)]))
    if args.only in (None, "quick"):
        print("\n".join(["", "bayesmeta run --quick", *quick_table(learners, datas, args.threads)]))
    if args.only in (None, "memory") and not args.quick:
        print("\n".join(["", "shipped configs, peak memory", *memory_table(args.threads)]))


if __name__ == "__main__":
    main()
