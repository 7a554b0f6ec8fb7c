"""Image data for few-shot classification: bundled digits and Omniglot-layout folders.

:func:`load_digits` returns scikit-learn's bundled 8 x 8 handwritten digits (no
download); :func:`digits_episodes` meta-trains on some digit classes and
meta-tests on the others. :func:`load_image_folder` reads an image folder laid
out like Omniglot (``root/alphabet/character/*.png``), each (character,
rotation) a class as in the few-shot literature.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from bayesmeta._checks import check_count
from bayesmeta.tasks.episodes import Episodes, renamed_counts

__all__ = ["digits_episodes", "load_digits", "load_image_folder"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"})
_INSTALL = 'pip install "bayesmeta[data]"'


def load_digits(*, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Return scikit-learn's bundled handwritten digits as image tensors.

    Parameters
    ----------
    dtype
        Floating dtype of the images (default: torch's default dtype).

    Returns
    -------
    x : Tensor
        ``[1797, 1, 8, 8]`` in ``[0, 1]`` (the 0..16 grey levels divided by 16).
    labels : Tensor
        Long digit labels ``[1797]`` in ``0 .. 9`` (174 to 183 per class).

    Raises
    ------
    ImportError
        If scikit-learn is not installed.

    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as err:
        raise ImportError(f"load_digits needs scikit-learn: {_INSTALL}") from err
    data = sk_load_digits()
    x = torch.as_tensor(np.asarray(data.images) / 16.0, dtype=dtype or torch.get_default_dtype())
    return x[:, None], torch.as_tensor(np.asarray(data.target), dtype=torch.long)


def digits_episodes(
    n_way: int = 5,
    k_support: int = 1,
    k_query: int = 15,
    *,
    train_classes: Sequence[int] = (0, 1, 2, 3, 4),
    test_classes: Sequence[int] = (5, 6, 7, 8, 9),
    seed: int = 0,
    dtype: torch.dtype | None = None,
    **deprecated: Any,
) -> dict[str, Episodes]:
    """Episode sources over the bundled digits: meta-train and meta-test on disjoint digits.

    Parameters
    ----------
    n_way, k_support, k_query, **deprecated
        As for :class:`~bayesmeta.tasks.Episodes` (``k_shot`` and ``q_query``, their
        old names, still work with a warning); ``n_way`` may not exceed
        the number of digits in either group.
    train_classes, test_classes
        The digits of each split; they must be disjoint.
    seed
        Seed of the two sources (each gets its own, derived from it).
    dtype
        Floating dtype of the images.

    Returns
    -------
    dict of str to Episodes
        ``{"train": ..., "test": ...}``; images ``[1, 8, 8]``.

    Examples
    --------
    >>> sources = digits_episodes(n_way=5, k_support=1, k_query=5)
    >>> tuple(sources["test"].sample(3).support_x.shape)
    (3, 5, 1, 8, 8)

    """
    k_support, k_query = renamed_counts(k_support, k_query, deprecated)
    x, labels = load_digits(dtype=dtype)
    return Episodes.splits(
        x,
        labels,
        n_way,
        k_support,
        k_query,
        classes={"train": list(train_classes), "test": list(test_classes)},
        seed=seed,
        dtype=x.dtype,
    )


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _class_images(folder: Path, layout: str, level: str) -> list[Path]:
    """The images of one class folder, which must hold images and no sub-folders."""
    if _subdirs(folder):
        raise ValueError(f"{folder} holds sub-folders; {layout}, with images at the {level} level")
    images = _images(folder)
    if not images:
        raise ValueError(f"{folder} holds no images; {layout}")
    return images


def _find_classes(root: Path, *, two_levels: bool) -> list[tuple[str, list[Path]]]:
    """List ``(class name, image paths)`` under ``root``, checking the layout.

    ``two_levels``: Omniglot's ``root/alphabet/character/*.png``, each character a class
    named ``alphabet/character``; else ``root/class/*.png``.
    """
    if two_levels:
        layout = "expected root/alphabet/character/*.png (Omniglot's layout)"
    else:
        layout = "expected root/class/*.png (layout='class')"
    if _images(root):
        raise ValueError(f"{root} holds image files directly; {layout}")
    found: list[tuple[str, list[Path]]] = []
    for top in _subdirs(root):
        if not two_levels:
            found.append((top.name, _class_images(top, layout, "second")))
            continue
        if _images(top):
            raise ValueError(
                f"{top} holds image files directly, so root looks like one alphabet; "
                f"pass its parent folder as root ({layout}), or layout='class' if each "
                "sub-folder of root is one class"
            )
        for character in _subdirs(top):
            images = _class_images(character, layout, "third")
            found.append((f"{top.name}/{character.name}", images))
    if not found:
        raise ValueError(f"no images found under {root}; {layout}")
    return found


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    image_size: int = 28,
    rotations: Sequence[int] = (0, 90, 180, 270),
    invert: bool = True,
    layout: Literal["alphabet/character", "class"] = "alphabet/character",
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor, list[str]]:
    """Read a folder of images, one sub-folder per class, into tensors.

    The layout is ``root/alphabet/character/*.png`` (Omniglot's) or, with
    ``layout="class"``, ``root/class/*.png`` (any of PNG, JPEG, BMP, GIF,
    TIFF). Images are converted to greyscale and resized to
    ``image_size`` with Pillow's Lanczos filter. Each (character, rotation)
    pair is its own class, as in Santoro et al. (2016) and Finn et al. (2017);
    rotations are applied with ``torch.rot90`` (counter-clockwise).

    Omniglot ships two roots, ``images_background`` (30 alphabets, 964
    characters) and ``images_evaluation`` (20 alphabets, 659 characters);
    load each and concatenate, offsetting the second one's labels.

    Parameters
    ----------
    root
        The folder that holds one folder per alphabet.
    image_size
        Side ``S`` of the square output images, ``>= 1``.
    rotations
        Distinct multiples of 90 degrees; ``(0,)`` for no rotated classes.
    invert
        Map dark strokes on a white background (Omniglot) to strokes 1 on 0.
    layout
        ``"alphabet/character"`` (two folder levels, each character a class)
        or ``"class"`` (one folder per class).
    dtype
        Floating dtype of the images (default: torch's default dtype).

    Returns
    -------
    x : Tensor
        Images ``[M, 1, S, S]`` in ``[0, 1]``, ``M = images * len(rotations)``.
    labels : Tensor
        Long labels ``[M]``: character ``i`` rotated by ``rotations[j]`` is
        class ``i * len(rotations) + j``, so ``labels // len(rotations)`` is
        the character (use it to keep a character's rotations in one split).
    class_names : list of str
        ``"alphabet/character"`` (or the class folder's name), with ``"/rot90"`` etc. appended when
        ``rotations`` is not ``(0,)``; ``class_names[label]`` names a class.

    Raises
    ------
    ImportError
        If Pillow is not installed.
    FileNotFoundError
        If ``root`` does not exist or is not a folder.
    ValueError
        If no images are found, the layout is not ``alphabet/character/``,
        a file cannot be read (the message names it), or ``rotations`` holds
        a value that is not a multiple of 90.

    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:
        raise ImportError(f"load_image_folder needs Pillow: {_INSTALL}") from err
    size = check_count("image_size", image_size, minimum=1)
    rots = [int(r) for r in rotations]
    if not rots or any(r % 90 for r in rots) or len({r % 360 for r in rots}) != len(rots):
        raise ValueError(
            f"rotations must be distinct multiples of 90 degrees, e.g. (0, 90, 180, 270), "
            f"got {tuple(rotations)}"
        )
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"root {folder} does not exist or is not a folder")
    if layout not in ("alphabet/character", "class"):
        raise ValueError(f"layout must be 'alphabet/character' or 'class', got {layout!r}")
    characters = _find_classes(folder, two_levels=layout == "alphabet/character")
    arrays: list[np.ndarray] = []
    char_index: list[int] = []
    for i, (_, paths) in enumerate(characters):
        for path in paths:
            try:
                with Image.open(path) as img:
                    grey = img.convert("L").resize((size, size), Image.Resampling.LANCZOS)
                    arrays.append(np.asarray(grey, dtype=np.float32) / 255.0)
            except (UnidentifiedImageError, OSError) as err:
                raise ValueError(f"cannot read image {path}: {err}") from err
            char_index.append(i)
    base = torch.as_tensor(np.stack(arrays), dtype=dtype or torch.get_default_dtype())
    if invert:
        base = 1.0 - base
    base = base[:, None]  # [images, 1, S, S]
    chars = torch.as_tensor(char_index, dtype=torch.long)
    r = len(rots)
    x = torch.cat([torch.rot90(base, k=(rot // 90) % 4, dims=(-2, -1)) for rot in rots])
    labels = torch.cat([chars * r + j for j in range(r)])
    if rots == [0]:
        names = [name for name, _ in characters]
    else:
        names = [f"{name}/rot{rot % 360}" for name, _ in characters for rot in rots]
    return x, labels, names
