import pytest
import torch

from bayesmeta.tasks import Episodes, glyph_episodes, make_glyphs
from bayesmeta.tasks import glyphs as glyphs_module


def nearest_mean_accuracy(x, num_classes, per_class, shots):
    x = x.reshape(num_classes, per_class, -1)
    means = x[:, :shots].mean(1)
    query = x[:, shots:].reshape(-1, x.shape[-1])
    truth = torch.arange(num_classes).repeat_interleave(per_class - shots)
    return float((torch.cdist(query, means).argmin(1) == truth).float().mean())


def test_shapes_range_and_labels():
    x, labels = make_glyphs(6, 4, 20, seed=0)
    assert x.shape == (24, 1, 20, 20) and x.dtype == torch.get_default_dtype()
    assert labels.dtype == torch.long and labels.tolist() == [c for c in range(6) for _ in range(4)]
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    ink = x.mean(dim=(1, 2, 3))
    assert float(ink.min()) > 0.02 and float(ink.max()) < 0.4  # every image has strokes, not a blob
    assert make_glyphs(2, 2, seed=0, dtype=torch.float64)[0].dtype == torch.float64


def test_reproducible_and_seed_dependent():
    a, _ = make_glyphs(5, 3, seed=7)
    b, _ = make_glyphs(5, 3, seed=7)
    c, _ = make_glyphs(5, 3, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_chunked_rendering_matches(monkeypatch):
    full, _ = make_glyphs(7, 5, seed=1)
    monkeypatch.setattr(glyphs_module, "_CHUNK", 4)
    chunked, _ = make_glyphs(7, 5, seed=1)
    torch.testing.assert_close(chunked, full)


def test_rasteriser_matches_brute_force_distance():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(4, 150, 2, generator=g) * 1.4 - 0.2  # some points off the image
    width = 0.025 + 0.02 * torch.rand(4, generator=g)
    size = 24
    owner = torch.arange(4).repeat_interleave(150)
    img = glyphs_module._rasterise(pts.reshape(-1, 2), owner, width, size)
    centres = (torch.arange(size) + 0.5) / size
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    grid = torch.stack([xx, yy], -1).reshape(-1, 2)
    dist = torch.cdist(grid.expand(4, -1, -1), pts).amin(-1).reshape(4, size, size) * size
    ref = (width[:, None, None] * size + 0.5 - dist).clamp(0, 1)
    torch.testing.assert_close(img, ref, atol=1e-3, rtol=0)


def test_classes_distinguishable_but_variants_vary():
    x, _ = make_glyphs(20, 20, seed=0)
    acc = nearest_mean_accuracy(x, 20, 20, shots=10)
    assert 0.5 < acc < 1.0  # chance is 0.05
    # no two examples of a class are identical
    per_class = x.reshape(20, 20, -1)
    diffs = torch.cdist(per_class, per_class)
    off_diag = diffs[:, ~torch.eye(20, dtype=torch.bool)]
    assert float(off_diag.min()) > 0.5
    # more distortion: harder; none: easier
    harder = nearest_mean_accuracy(make_glyphs(20, 20, seed=0, distortion=2.0)[0], 20, 20, 10)
    easier = nearest_mean_accuracy(make_glyphs(20, 20, seed=0, distortion=0.0)[0], 20, 20, 10)
    assert harder < acc and easier > 0.95


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_classes": 0}, ValueError, "num_classes must be >= 1"),
        ({"examples_per_class": 0}, ValueError, "examples_per_class must be >= 1"),
        ({"image_size": 4}, ValueError, "image_size must be >= 8"),
        ({"distortion": -1.0}, ValueError, "distortion must be finite and >= 0"),
        ({"num_classes": 2.5}, TypeError, "num_classes must be an int"),
    ],
)
def test_rejects_bad_arguments(kwargs, error, match):
    args = {"num_classes": 3, "examples_per_class": 2, **kwargs}
    with pytest.raises(error, match=match):
        make_glyphs(**args)


def test_glyph_episodes_split_by_class():
    sources = glyph_episodes(5, 1, 3, num_classes=50, examples_per_class=4, image_size=16)
    assert list(sources) == ["train", "val", "test"]
    assert all(isinstance(s, Episodes) for s in sources.values())
    groups = [set(s.classes.tolist()) for s in sources.values()]
    assert [len(g) for g in groups] == [32, 8, 10]
    assert len(set.union(*groups)) == 50
    batch = sources["test"].sample(3)
    assert batch.support_x.shape == (3, 5, 1, 16, 16) and batch.query_x.shape == (3, 15, 1, 16, 16)
    assert set(batch.info["classes"].flatten().tolist()) <= groups[2]
    with pytest.raises(ValueError, match=r"k_support \+ k_query = 1 \+ 15 = 16"):
        glyph_episodes(5, 1, 15, num_classes=20, examples_per_class=10, fractions=(10, 10))
