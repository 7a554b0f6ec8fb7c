"""Class-count augmentation and the glyphs-to-digits episode sources."""

import pytest
import torch

from bayesmeta.errors import ShapeError
from bayesmeta.tasks import augment_classes, cross_domain_episodes, load_digits, match_style


def test_rotations_make_four_classes_with_the_rotated_pixels():
    x = torch.arange(2 * 9.0).reshape(2, 1, 3, 3)
    y = torch.tensor([0, 1])
    ax, ay = augment_classes(x, y)
    assert ax.shape == (8, 1, 3, 3) and torch.unique(ay).numel() == 8
    assert ay.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    # image 0 rotated by 90 degrees counter-clockwise: the top row becomes the left column
    torch.testing.assert_close(ax[2, 0], torch.rot90(x[0, 0], 1, (0, 1)))
    assert ax[2, 0, :, 0].tolist() == x[0, 0, 0].flip(0).tolist()
    torch.testing.assert_close(ax[5, 0], torch.rot90(x[1, 0], 2, (0, 1)))
    assert (ay // 4).tolist() == [0, 1] * 4


def test_flips_make_eight_distinct_classes():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    ax, ay = augment_classes(x, torch.tensor([3]), flips=True)
    assert ax.shape == (8, 1, 4, 4) and ay.tolist() == list(range(24, 32))
    assert len({tuple(img.flatten().tolist()) for img in ax}) == 8  # the 8 symmetries differ
    torch.testing.assert_close(ax[4, 0], x[0, 0].flip(-1))


def test_augment_refuses_bad_input():
    with pytest.raises(ShapeError, match="square"):
        augment_classes(torch.zeros(2, 1, 3, 4), torch.tensor([0, 1]))
    with pytest.raises(ShapeError, match="labels"):
        augment_classes(torch.zeros(2, 1, 3, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="multiples of 90"):
        augment_classes(torch.zeros(2, 1, 3, 3), torch.tensor([0, 1]), rotations=(0, 45))


def test_match_style_shrinks_fills_and_normalises():
    x = torch.zeros(2, 1, 32, 32)
    x[0, 0, 10:20, 14:16] = 1.0  # a vertical bar
    out = match_style(x, 8)
    assert out.shape == (2, 1, 8, 8)
    torch.testing.assert_close(out[0].amax(), torch.tensor(1.0))
    assert bool((out[0, 0].amax(1) > 0).all())  # the bar is stretched to fill every row
    assert float(out[1].abs().sum()) == 0.0  # a blank image stays blank
    with pytest.raises(ValueError, match="odd"):
        match_style(x, 8, thicken=2)


def test_cross_domain_episodes_have_the_digits_shapes_and_disjoint_targets():
    eps = cross_domain_episodes(5, 1, 3, num_classes=30, examples_per_class=5)
    assert set(eps) == {"train", "source_val", "val", "test"}
    for name, source in eps.items():
        batch = source.sample(2)
        assert batch.support_x.shape == (2, 5, 1, 8, 8), name
        assert batch.query_x.shape == (2, 15, 1, 8, 8), name
    assert eps["val"].classes.tolist() == [0, 1, 2, 3, 4]
    assert eps["test"].classes.tolist() == [5, 6, 7, 8, 9]
    assert eps["train"].num_classes == 24 and eps["source_val"].num_classes == 6
    aug = cross_domain_episodes(
        5, 1, 3, source="digits", source_rotations=(0, 180), source_flips=True
    )
    assert aug["train"].num_classes == 20 and "source_val" not in aug
    with pytest.raises(ValueError, match="both"):
        cross_domain_episodes(source="digits", target_test_classes=(4, 5, 6, 7, 8))
    with pytest.raises(ValueError, match="target"):
        cross_domain_episodes(target="omniglot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source"):
        cross_domain_episodes(source="mnist")  # type: ignore[arg-type]


def test_cross_domain_episodes_upsample_both_domains():
    eps = cross_domain_episodes(5, 1, 2, num_classes=30, examples_per_class=4, image_size=16)
    assert eps["train"].sample(1).support_x.shape == (1, 5, 1, 16, 16)
    assert eps["test"].x.shape[-2:] == (16, 16) and float(eps["test"].x.max()) <= 1.0


def test_pool_target_adds_the_training_digits_symmetries_as_training_classes():
    plain = cross_domain_episodes(5, 1, 2, num_classes=30, examples_per_class=4, seed=0)
    pooled = cross_domain_episodes(
        5, 1, 2, num_classes=30, examples_per_class=4, pool_target=True, seed=0
    )
    train = pooled["train"]
    assert train.num_classes == plain["train"].num_classes + 5 * 8
    new = train.classes[~torch.isin(train.classes, plain["train"].classes)]
    assert new.numel() == 40 and int(new.min()) >= 30  # after every glyph label
    # the pooled images are the digits 0-4: the identity transform of digit 0 is one class
    digit0 = train.x[train.labels == int(new.min())]
    x, y = load_digits()
    assert digit0.shape[0] == int((y == 0).sum())
    torch.testing.assert_close(digit0, x[y == 0])
    # the source validation and the target splits are unchanged
    assert torch.equal(pooled["source_val"].classes, plain["source_val"].classes)
    assert torch.equal(pooled["test"].classes, plain["test"].classes)
    with pytest.raises(ValueError, match="pool_target"):
        cross_domain_episodes(5, 1, 2, source="digits", pool_target=True)
