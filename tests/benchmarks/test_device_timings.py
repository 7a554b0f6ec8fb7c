"""benchmarks/device_timings.py times each learner on every device asked for, never falling back."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).parents[2] / "benchmarks"


def _module():
    if "device_timings" not in sys.modules:
        spec = importlib.util.spec_from_file_location("device_timings", BENCH / "device_timings.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["device_timings"] = module
        spec.loader.exec_module(module)
    return sys.modules["device_timings"]


def test_a_cpu_run_prints_a_row_per_learner_and_says_when_cuda_is_skipped(capsys) -> None:
    timings = _module()
    assert timings.main(["--quick", "--learners", "fomaml", "reptile"]) == 0
    out = capsys.readouterr().out
    assert "| cpu | sinusoid | fomaml |" in out
    assert "| cpu | sinusoid | reptile |" in out
    assert ("torch sees no GPU" in out) == (not torch.cuda.is_available())


def test_a_device_asked_for_and_absent_is_an_error() -> None:
    timings = _module()
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        timings.devices_to_time(["cuda"])
    assert timings.devices_to_time(None)[0] == ["cpu"]


def test_the_table_gives_each_device_over_the_cpu() -> None:
    timings = _module()
    rows = [
        timings.Row("cpu", "glyphs", "maml", 100.0, 10.0, None),
        timings.Row("cuda", "glyphs", "maml", 25.0, 5.0, 512.0),
    ]
    text = timings.table(rows)
    assert "| cuda | glyphs | maml | 25.0 | 5.0 | 0.25 | 512 |" in text
    assert "| cpu | glyphs | maml | 100.0 | 10.0 | 1.00 | - |" in text


def test_the_timer_waits_and_takes_the_median() -> None:
    timings = _module()
    calls = []
    ms = timings.median_ms(lambda: calls.append(1), "cpu", warmup=2, repeats=3)
    assert len(calls) == 5 and ms >= 0.0
