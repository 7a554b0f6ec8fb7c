import pytest
import torch

from bayesmeta import metrics
from bayesmeta.scoring.plotting import (
    _binomial_band,
    plot_coverage_curve,
    plot_loss_trace,
    plot_pit_histogram,
    plot_reliability,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_reliability_diagram_is_written_for_one_or_several_learners(tmp_path):
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(300, 5, generator=g) * 2, -1)
    y = torch.multinomial(probs, 1, generator=g).squeeze(-1)
    rel = metrics.reliability(probs, y)
    one = plot_reliability(rel, tmp_path / "one.png")
    two = plot_reliability({"a": rel, "b": rel}, tmp_path / "two.png", title="t")
    for path in (one, two):
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        plot_reliability({}, tmp_path / "none.png")


def test_binomial_band_is_the_exact_central_interval():
    # Binomial(10, 1/2): P(X <= 1) = 0.011, P(X <= 2) = 0.055, P(X <= 7) = 0.945, P(X <= 8) = 0.989
    assert _binomial_band(10, 0.5) == (2, 8)
    lo, hi = _binomial_band(20000, 0.05)  # normal approximation: 1000 +- 1.96 * 30.8
    assert abs(lo - 940) <= 2 and abs(hi - 1060) <= 2


def test_pit_histogram_is_written(tmp_path):
    g = torch.Generator().manual_seed(0)
    pit = torch.rand(4, 250, generator=g)
    path = plot_pit_histogram(pit, tmp_path / "pit.png", bins=10, title="PIT")
    assert path == tmp_path / "pit.png" and path.read_bytes()[:8] == PNG
    assert plot_pit_histogram(pit[0, :3], str(tmp_path / "few.png")).is_file()
    with pytest.raises(ValueError, match="bins must be an int >= 1"):
        plot_pit_histogram(pit, tmp_path / "x.png", bins=0)
    with pytest.raises(ValueError, match="pit is empty"):
        plot_pit_histogram(torch.zeros(0), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"pit values must lie in \[0, 1\]"):
        plot_pit_histogram(torch.tensor([0.5, 1.5]), tmp_path / "x.png")
    with pytest.raises(TypeError, match=r"pit must be a torch\.Tensor"):
        plot_pit_histogram([0.5], tmp_path / "x.png")  # type: ignore[arg-type]


def test_coverage_curve_is_written_for_one_or_several_curves(tmp_path):
    levels = torch.linspace(0.1, 0.9, 9)
    one = plot_coverage_curve(levels, levels**1.5, tmp_path / "one.png")
    two = plot_coverage_curve(
        levels.tolist(), torch.stack([levels, levels**2]), tmp_path / "two.png", labels=["a", "b"]
    )
    for path in (one, two):
        assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="observed must have shape"):
        plot_coverage_curve(levels, levels[:3], tmp_path / "x.png")
    with pytest.raises(ValueError, match="labels must name the 2 curve"):
        plot_coverage_curve(levels, torch.stack([levels, levels]), tmp_path / "x.png", labels=["a"])
    with pytest.raises(ValueError, match="levels must be a non-empty 1-D"):
        plot_coverage_curve([], [], tmp_path / "x.png")


def test_loss_trace_is_written(tmp_path):
    decaying = [10.0 * 0.9**i for i in range(100)]  # spans decades: log axis
    assert plot_loss_trace(decaying, tmp_path / "a.png").read_bytes()[:8] == PNG
    elbo = torch.linspace(-5.0, 3.0, 30)  # negative values: linear axis
    assert plot_loss_trace(elbo, tmp_path / "b.png", window=30, ylabel="-ELBO").is_file()
    assert plot_loss_trace([1.0], tmp_path / "c.png").is_file()
    with pytest.raises(ValueError, match="losses is empty"):
        plot_loss_trace([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="finite"):
        plot_loss_trace([1.0, float("nan")], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"window must be an int in \[1, 2\]"):
        plot_loss_trace([1.0, 2.0], tmp_path / "x.png", window=3)
