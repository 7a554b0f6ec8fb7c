"""Settings chosen from the data (backbone, iterations), --quick on images, the glyph cache."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

import bayesmeta.runs.learners  # noqa: F401  (registers the learners)
from bayesmeta.nets.conv import Conv4
from bayesmeta.nets.mlp import MLP
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.config_file import ConfigError, parse_config
from bayesmeta.runs.data import glyph_alphabet
from bayesmeta.runs.experiment import quick
from bayesmeta.runs.folder import read_run_config
from bayesmeta.tasks.glyphs import make_glyphs
from bayesmeta.tasks.images import digits_episodes


def test_digits_default_to_an_mlp_on_flat_pixels_and_fewer_iterations() -> None:
    config = RunConfig(learner="protonet", data="digits")
    assert config.backbone == "mlp"
    assert config.iterations == 2000
    batch = config.train_source().sample(2)
    assert tuple(batch.support_x.shape) == (2, 5 * 5, 64)
    net = config.build_learner().net
    assert isinstance(net, MLP)
    assert net.in_features == 64


def test_glyphs_default_to_conv4_and_ten_thousand_iterations() -> None:
    config = RunConfig(learner="maml", data="glyphs", glyph_classes=40)
    assert config.backbone == "conv4"
    assert config.iterations == 10000
    assert isinstance(config.build_learner().net, Conv4)


def test_explicit_settings_win_over_the_data_defaults() -> None:
    config = RunConfig(
        learner="protonet", data="digits", backbone="conv4", iterations=7, k_support=1
    )
    assert (config.backbone, config.iterations) == ("conv4", 7)
    assert isinstance(config.build_learner().net, Conv4)
    # the same 8x8 image episodes as the library's digits_episodes (no upsampling)
    ours = config.train_source().sample(3)
    theirs = digits_episodes(5, 1, 15, seed=0)["train"]
    theirs.generator.manual_seed(0)
    reference = theirs.sample(3)
    assert tuple(ours.support_x.shape) == (3, 5, 1, 8, 8)
    assert torch.equal(ours.support_x, reference.support_x)
    assert torch.equal(ours.query_y, reference.query_y)


def test_mlp_backbone_on_glyphs_flattens_the_images() -> None:
    config = RunConfig(learner="maml", data="glyphs", backbone="mlp", glyph_classes=40)
    assert tuple(config.train_source().sample(1).support_x.shape[-1:]) == (28 * 28,)
    assert isinstance(config.build_learner().net, MLP)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"data": "sinusoid", "backbone": "mlp"}, "backbone is for image data"),
        ({"data": "digits", "learner": "protonet", "backbone": "resnet"}, "backbone must be"),
    ],
)
def test_unsupported_backbones_are_errors(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig(**settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        parse_config(dict(settings))


def test_quick_caps_the_image_meta_batch_and_keeps_regression_s() -> None:
    images = quick(RunConfig(learner="protonet", data="digits", meta_batch_size=25))
    assert (images.meta_batch_size, images.iterations, images.eval_tasks) == (2, 20, 20)
    assert images.backbone == "mlp"
    small = quick(RunConfig(learner="protonet", data="digits", meta_batch_size=1))
    assert small.meta_batch_size == 1
    regression = quick(RunConfig(meta_batch_size=25))
    assert (regression.meta_batch_size, regression.iterations, regression.eval_tasks) == (
        25,
        50,
        50,
    )


def test_glyph_splits_share_one_rendered_alphabet() -> None:
    glyph_alphabet.cache_clear()
    config = RunConfig(learner="maml", data="glyphs", glyph_classes=40, k_support=1)
    config.train_source()
    config.held_out_source(5)
    assert glyph_alphabet.cache_info().misses == 1
    x, labels = glyph_alphabet(40)
    want_x, want_labels = make_glyphs(40, 20, seed=0)
    assert torch.equal(x, want_x) and torch.equal(labels, want_labels)


def test_run_folders_from_before_the_backbone_setting_read_as_conv4(tmp_path: Path) -> None:
    config = RunConfig(learner="protonet", data="digits", backbone="conv4", iterations=3)
    raw = asdict(config)
    del raw["backbone"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert read_run_config(tmp_path) == replace(config)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"data": "glyphs", "hidden": [8]}, "hidden has no effect with backbone 'conv4'"),
        ({"data": "digits", "channels": 8}, "channels has no effect with backbone 'mlp'"),
    ],
)
def test_a_setting_the_backbone_does_not_read_is_an_error(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"learner": "protonet", **settings})


def test_the_command_line_backbone_wins_and_a_wrong_one_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bayesmeta.cli.main import main

    args = ["run", "--learner", "protonet", "--data", "digits", "--out", str(tmp_path)]
    assert main([*args, "--backbone", "resnet"]) == 2
    assert "backbone must be one of conv4, mlp" in capsys.readouterr().err
    small = ["--iterations", "2", "--eval-tasks", "3", "--no-progress"]
    assert main([*args, "--backbone", "conv4", *small]) == 0
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert read_run_config(run_dir).backbone == "conv4"
