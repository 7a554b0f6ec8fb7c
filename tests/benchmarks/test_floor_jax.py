"""benchmarks/floor_jax.py times the same work as bayesmeta: equal meta-gradients, a smoke run.

Skipped without the benchmark-only ``floor`` extra (jax, optax).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "floor_jax.py"


def _module():
    if "floor_jax" not in sys.modules:
        spec = importlib.util.spec_from_file_location("floor_jax", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["floor_jax"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["floor_jax"]


def test_jax_meta_gradients_equal_bayesmeta_ones():
    rows = _module().gradient_check(train_steps=5)
    assert {r.learner for r in rows} == {"MAML", "FOMAML", "Reptile", "BayesianMAML"}
    for r in rows:
        assert r.ok, r
        assert r.max_rel_diff < 1e-4, r


def test_quick_run_checks_and_prints_the_table(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| BayesianMAML | init |" in done.stdout
    assert "| bayesmeta MAML / JAX MAML |" in done.stdout
    assert "| BayesianMAML (1 sample) |" in done.stdout
