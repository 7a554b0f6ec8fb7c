import sys

import numpy as np
import pytest
import torch
from PIL import Image

from bayesmeta.tasks import (
    Episodes,
    TaskSource,
    digits_episodes,
    load_digits,
    load_image_folder,
    split_classes,
)

ALPHABETS = {"Alpha": ["character01", "character02", "character03"], "Beta": ["c1", "c2", "c3"]}


def draw(char_index, example, size=105):
    """A white image with a black bar whose place depends on the character (not symmetric)."""
    img = np.full((size, size), 255, dtype=np.uint8)
    top = 10 + 12 * char_index + example
    img[top : top + 10, 10:60] = 0  # a horizontal bar in the left half
    return img


def write_omniglot(root, alphabets=ALPHABETS, per_char=4):
    index = 0
    for alphabet, chars in alphabets.items():
        for char in chars:
            folder = root / alphabet / char
            folder.mkdir(parents=True)
            for j in range(per_char):
                png = folder / f"{index:04d}_{j:02d}.png"
                Image.fromarray(draw(index, j)).convert("1").save(png)  # bilevel, as Omniglot
            index += 1
    return root


def test_load_digits():
    x, labels = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.get_default_dtype()
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert labels.dtype == torch.long and labels.shape == (1797,)
    counts = torch.bincount(labels)
    assert len(counts) == 10 and int(counts.min()) == 174 and int(counts.max()) == 183
    assert load_digits(dtype=torch.float64)[0].dtype == torch.float64


def test_digits_episodes_meta_train_and_test_on_other_digits():
    sources = digits_episodes(n_way=5, k_support=1, k_query=15, seed=0)
    assert list(sources) == ["train", "test"]
    assert isinstance(sources["train"], TaskSource)
    train = sources["train"].sample(30)
    test = sources["test"].sample(30)
    assert train.support_x.shape == (30, 5, 1, 8, 8) and test.query_x.shape == (30, 75, 1, 8, 8)
    assert set(train.info["classes"].flatten().tolist()) == {0, 1, 2, 3, 4}
    assert set(test.info["classes"].flatten().tolist()) == {5, 6, 7, 8, 9}
    again = digits_episodes(n_way=5, k_support=1, k_query=15, seed=0)["test"].sample(30)
    assert torch.equal(again.support_x, test.support_x)
    other = digits_episodes(3, 2, 2, train_classes=(0, 2, 4, 6), test_classes=(1, 3, 5))
    assert other["test"].classes.tolist() == [1, 3, 5]
    with pytest.raises(ValueError, match="n_way=6 but only 5 classes"):
        digits_episodes(n_way=6)
    with pytest.raises(ValueError, match="class 4 is in both"):
        digits_episodes(n_way=2, train_classes=(0, 4), test_classes=(4, 5))


def test_missing_optional_dependencies_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r'pip install "bayesmeta\[data\]"'):
        load_digits()
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r'pip install "bayesmeta\[data\]"'):
        load_image_folder(tmp_path)


def test_load_image_folder_layout_rotations_and_inversion(tmp_path):
    root = write_omniglot(tmp_path / "images_background")
    x, labels, names = load_image_folder(root)
    assert x.shape == (6 * 4 * 4, 1, 28, 28) and x.dtype == torch.get_default_dtype()
    assert labels.dtype == torch.long and torch.equal(torch.bincount(labels), torch.full((24,), 4))
    assert len(names) == 24
    assert names[:4] == [f"Alpha/character01/rot{r}" for r in (0, 90, 180, 270)]
    assert names[-1] == "Beta/c3/rot270"
    # inverted: background 0, strokes near 1
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(x[:, :, 0, -1].max()) < 0.05 and float(x.max()) > 0.9
    # label i*4 + j is character i rotated by 90*j, counter-clockwise
    for label in (0, 5, 22):
        char, rot = divmod(label, 4)
        upright = x[labels == 4 * char]
        torch.testing.assert_close(x[labels == label], torch.rot90(upright, rot, dims=(-2, -1)))
    # the unrotated image is the character's drawing, downsampled and inverted
    expected = 1.0 - np.asarray(Image.fromarray(draw(1, 0)).resize((28, 28)), np.float32) / 255
    first = x[labels == 4][0, 0].numpy()
    assert np.abs(first - expected).mean() < 0.05
    # no rotations, no inversion, other size
    x0, labels0, names0 = load_image_folder(root, image_size=14, rotations=(0,), invert=False)
    assert x0.shape == (24, 1, 14, 14) and int(labels0.max()) == 5
    assert names0 == ["Alpha/character01", "Alpha/character02", "Alpha/character03"] + [
        f"Beta/c{i}" for i in (1, 2, 3)
    ]
    assert float(x0[:, :, 0, -1].min()) > 0.95  # white background kept


def test_episodes_from_folder_split_by_character(tmp_path):
    root = write_omniglot(tmp_path / "omniglot")
    x, labels, _ = load_image_folder(root)
    train_chars, test_chars = split_classes(labels // 4, (4, 2), seed=0)
    train_classes = (train_chars[:, None] * 4 + torch.arange(4)).flatten()
    test_classes = (test_chars[:, None] * 4 + torch.arange(4)).flatten()
    sources = Episodes.splits(
        x, labels, 3, 1, 2, classes={"train": train_classes, "test": test_classes}, seed=0
    )
    batch = sources["test"].sample(5)
    assert batch.support_x.shape == (5, 3, 1, 28, 28)
    assert set((batch.info["classes"] // 4).flatten().tolist()) <= set(test_chars.tolist())


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    empty = tmp_path / "empty"
    (empty / "Alpha").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images found under"):
        load_image_folder(empty)
    root = write_omniglot(tmp_path / "ok")
    with pytest.raises(ValueError, match="rotations must be distinct multiples of 90"):
        load_image_folder(root, rotations=(0, 45))
    with pytest.raises(ValueError, match="rotations must be distinct multiples of 90"):
        load_image_folder(root, rotations=(0, 360))
    with pytest.raises(ValueError, match="image_size must be >= 1"):
        load_image_folder(root, image_size=0)
    # pointed at one alphabet instead of the root
    with pytest.raises(ValueError, match="root looks like one alphabet; pass its parent"):
        load_image_folder(root / "Alpha")
    # pointed at one character folder
    with pytest.raises(ValueError, match="holds image files directly"):
        load_image_folder(root / "Alpha" / "character01")


def test_folder_errors_bad_files_and_nesting(tmp_path):
    root = write_omniglot(tmp_path / "bad")
    broken = root / "Beta" / "c2" / "zz_broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*zz_broken\.png"):
        load_image_folder(root)
    broken.unlink()
    (root / "Beta" / "c2" / "notes.txt").write_text("ignored")  # non-images are skipped
    (root / "Beta" / ".DS_Store").write_text("ignored")
    assert load_image_folder(root, rotations=(0,))[0].shape == (24, 1, 28, 28)
    (root / "Beta" / "c4").mkdir()
    with pytest.raises(ValueError, match=r"c4 holds no images"):
        load_image_folder(root)
    (root / "Beta" / "c4").rmdir()
    (root / "Beta" / "c1" / "deeper").mkdir()
    with pytest.raises(ValueError, match="holds sub-folders"):
        load_image_folder(root)


def test_load_image_folder_with_one_folder_per_class(tmp_path):
    root = tmp_path / "mine"
    for i, name in enumerate(["cat", "dog", "owl"]):
        (root / name).mkdir(parents=True)
        for j in range(3):
            Image.fromarray(draw(i, j)).save(root / name / f"{j}.jpg")
    x, labels, names = load_image_folder(root, layout="class", rotations=(0,), image_size=16)
    assert names == ["cat", "dog", "owl"] and x.shape == (9, 1, 16, 16)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # the two layouts are not guessed: each says what it expected
    with pytest.raises(ValueError, match="or layout='class' if each sub-folder of root"):
        load_image_folder(root)
    with pytest.raises(ValueError, match="layout must be 'alphabet/character' or 'class'"):
        load_image_folder(root, layout="flat")
    (root / "owl" / "young").mkdir()
    with pytest.raises(ValueError, match="owl holds sub-folders; expected root/class"):
        load_image_folder(root, layout="class")
