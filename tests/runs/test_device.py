"""The run's ``device``: checked when the config is made, recorded, never silently replaced."""

import json

import pytest
import torch

from bayesmeta.cli.main import main
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.config_checks import check_device
from bayesmeta.runs.experiment import run_experiment

NO_GPU = not torch.cuda.is_available()


def test_cpu_is_the_default_and_is_recorded_in_the_run_folder(tmp_path):
    config = RunConfig(learner="maml", hidden=(8,), iterations=2, eval_tasks=4)
    assert config.device == "cpu"
    result = run_experiment(config, out_dir=tmp_path, progress=False)
    assert json.loads((result.run_dir / "config.json").read_text())["device"] == "cpu"
    assert all(p.device.type == "cpu" for p in result.learner.parameters())


@pytest.mark.parametrize("device", ["tpu", "gpu", "", "cuda:x", 3])
def test_a_device_torch_does_not_know_is_refused(device):
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        RunConfig(device=device)


@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_an_error_not_a_fallback(device):
    with pytest.raises(ValueError, match="needs a CUDA GPU, and torch sees none"):
        RunConfig(device=device)
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        check_device(device)


@pytest.mark.skipif(not NO_GPU, reason="this machine has a CUDA GPU")
def test_the_cli_says_why_it_cannot_run_on_cuda(tmp_path, capsys):
    code = main(["run", "--device", "cuda", "--quick", "--no-progress", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "use device 'cpu'" in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_cli_runs_on_the_device_it_is_given(tmp_path):
    args = ["run", "--device", "cpu", "--iterations", "2", "--eval-tasks", "4"]
    assert main([*args, "--no-progress", "--out", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "config.json").read_text())["device"] == "cpu"
