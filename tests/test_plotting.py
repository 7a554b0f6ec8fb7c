import pytest
import torch

from bayesmeta import metrics
from bayesmeta.plotting import plot_reliability


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
