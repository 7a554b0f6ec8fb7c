"""benchmarks/scaling.py times the same work on both sides and prints one row per setting.

Skipped without the benchmark-only ``floor`` extra (jax, optax).
"""

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

BENCH = Path(__file__).parents[2] / "benchmarks"


def _module():
    if "scaling" not in sys.modules:
        sys.path.insert(0, str(BENCH))
        spec = importlib.util.spec_from_file_location("scaling", BENCH / "scaling.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["scaling"] = module
        spec.loader.exec_module(module)
    return sys.modules["scaling"]


def test_each_setting_checks_equal_losses_and_times_both_sides(capsys):
    scaling = _module()
    axes = {"tasks": (5,), "steps": (1,)}
    results = scaling.run(axes, budget=0.001)
    assert set(results) == {("tasks", 5), ("steps", 1)}
    for timings in results.values():
        assert len(timings) == 2 and all(w > 0 and c >= 0 for w, c in timings)
    rows = capsys.readouterr().out
    assert "| steps | 25 | 40 | 1 |" in rows and "| tasks | 5 | 40 | 5 |" in rows
