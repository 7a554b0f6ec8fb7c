"""Meta-train on one image domain, test on another: :func:`cross_domain_episodes`.

Five digit classes are too few to meta-learn an embedding; thousands of generated glyph
classes are not. :func:`cross_domain_episodes` pairs the glyph alphabet (the *source*, meta-
or pre-training) with the bundled 8x8 digits (the *target*): glyphs are drawn at
``4 * image_size`` pixels, their strokes thickened and averaged down to the digits' size and
contrast by :func:`match_style`, so that both domains are bright strokes on a dark ground
that fill the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.nn import functional

from bayesmeta._checks import check_count, fmt_shape
from bayesmeta.errors import ShapeError
from bayesmeta.tasks.augment import augment_classes
from bayesmeta.tasks.episodes import Episodes, renamed_counts
from bayesmeta.tasks.glyphs import make_glyphs
from bayesmeta.tasks.images import load_digits
from bayesmeta.tasks.labelled import split_classes

__all__ = ["cross_domain_episodes", "match_style"]


def match_style(x: Tensor, image_size: int, *, thicken: int = 5, fill: bool = True) -> Tensor:
    """Shrink stroke images to ``image_size`` with the digits' stroke width and contrast.

    Each image is dilated by a ``thicken x thicken`` max filter (odd, 1 for none), cropped to
    the box around its ink (pixels above 0.2) when ``fill`` is true, resized to
    ``image_size`` by area averaging, and scaled so that its brightest pixel is 1.

    Parameters
    ----------
    x
        Images ``[M, C, H, W]`` in ``[0, 1]``, strokes bright.
    image_size
        Output side ``S``, ``>= 1``.
    thicken
        Odd size of the dilation, ``>= 1``.
    fill
        Stretch each glyph to fill the frame, as the digits do.

    Returns
    -------
    Tensor
        ``[M, C, S, S]`` in ``[0, 1]``.

    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ShapeError(
            f"x must be images [M, C, H, W], got "
            f"{fmt_shape(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
        )
    size = check_count("image_size", image_size, minimum=1)
    k = check_count("thicken", thicken, minimum=1)
    if k % 2 == 0:
        raise ValueError(f"thicken must be odd, got {k}")
    y = functional.max_pool2d(x, k, stride=1, padding=k // 2) if k > 1 else x
    if fill:
        ink = y.amax(1) > 0.2  # [M, H, W]
        rows, cols = ink.any(2), ink.any(1)
        out = []
        for i in range(y.shape[0]):
            r = torch.nonzero(rows[i]).squeeze(1)
            c = torch.nonzero(cols[i]).squeeze(1)
            img = y[i : i + 1]
            if r.numel() and c.numel():
                img = img[..., int(r[0]) : int(r[-1]) + 1, int(c[0]) : int(c[-1]) + 1]
            out.append(functional.interpolate(img, size=(size, size), mode="area"))
        small = torch.cat(out)
    else:
        small = functional.interpolate(y, size=(size, size), mode="area")
    return small / small.amax((1, 2, 3), keepdim=True).clamp_min(1e-6)


def cross_domain_episodes(
    n_way: int = 5,
    k_support: int = 1,
    k_query: int = 15,
    *,
    source: Literal["glyphs", "digits"] = "glyphs",
    target: Literal["digits"] = "digits",
    num_classes: int = 1000,
    examples_per_class: int = 20,
    distortion: float = 1.0,
    thicken: int = 5,
    target_train_classes: Sequence[int] = (0, 1, 2, 3, 4),
    target_test_classes: Sequence[int] = (5, 6, 7, 8, 9),
    source_rotations: Sequence[int] = (0,),
    source_flips: bool = False,
    image_size: int = 8,
    pool_target: bool = False,
    seed: int = 0,
    **deprecated: Any,
) -> dict[str, Episodes]:
    """Episodes that meta-train on a source domain and test on the digits.

    Parameters
    ----------
    n_way, k_support, k_query, **deprecated
        As for :class:`~bayesmeta.tasks.Episodes` (``k_shot`` and ``q_query``, their
        old names, still work with a warning), for every split.
    source
        ``"glyphs"``: ``num_classes`` generated glyphs (:func:`~bayesmeta.tasks.make_glyphs`
        at ``4 * 8`` pixels, then :func:`match_style`), 80% of the classes for ``"train"``;
        ``"digits"``: the target's own training digits (the in-domain control; ``"train"``
        and ``"val"`` then share their classes).
    target
        ``"digits"`` (scikit-learn's 8x8 digits, the only target for now).
    num_classes, examples_per_class, distortion
        Passed to :func:`~bayesmeta.tasks.make_glyphs`.
    thicken
        Dilation of the glyph strokes before shrinking (see :func:`match_style`).
    target_train_classes, target_test_classes
        Disjoint digit classes: the first give ``"val"`` (for early stopping, temperature
        fits and any other choice; never tune on ``"test"``), the second ``"test"``.
    source_rotations, source_flips
        Class-count augmentation of the source (:func:`~bayesmeta.tasks.augment_classes`);
        ``(0,)`` and ``False`` for none.
    image_size
        Side ``S`` of the returned images. The glyphs are always matched to the digits at
        8x8; a larger ``S`` then upsamples both domains alike (bilinear), which leaves a
        four-block conv net more than a 1x1 feature map.
    pool_target
        Also meta-train on the target's training classes: each of the eight symmetries of
        each training digit (:func:`~bayesmeta.tasks.augment_classes` with ``flips=True``)
        is a class of ``"train"`` beside the source classes, drawn as often as any of them.
        ``"val"`` then holds classes seen in training, so it no longer measures new classes:
        fix the number of iterations and every other choice beforehand.
    seed
        Seed of the glyphs, the split and the episode sources.

    Returns
    -------
    dict of str to Episodes
        ``"train"`` (source classes), ``"source_val"`` (held-out source classes; ``"glyphs"``
        only), ``"val"`` (target training classes), ``"test"`` (target test classes); images
        ``[1, S, S]``.

    Examples
    --------
    >>> eps = cross_domain_episodes(5, 1, 5, num_classes=30, examples_per_class=6)
    >>> tuple(eps["train"].sample(2).support_x.shape), sorted(eps)
    ((2, 5, 1, 8, 8), ['source_val', 'test', 'train', 'val'])

    """
    k_support, k_query = renamed_counts(k_support, k_query, deprecated)
    if target != "digits":
        raise ValueError(f"target must be 'digits', got {target!r}")
    if source not in ("glyphs", "digits"):
        raise ValueError(f"source must be 'glyphs' or 'digits', got {source!r}")
    if pool_target and source != "glyphs":
        raise ValueError("pool_target adds the target's classes to another source: use 'glyphs'")
    check_count("num_classes", num_classes, minimum=2)
    out_size = check_count("image_size", image_size, minimum=1)
    tx, ty = load_digits()
    size = tx.shape[-1]
    train_digits = torch.as_tensor(list(target_train_classes), dtype=torch.long)
    overlap = set(train_digits.tolist()) & {int(c) for c in target_test_classes}
    if overlap:
        raise ValueError(f"digits {sorted(overlap)} are in both the val and the test classes")
    out: dict[str, Episodes] = {}
    seeds = iter(range(seed * 4 + 1, seed * 4 + 5))
    if source == "glyphs":
        gx, gy = make_glyphs(
            num_classes, examples_per_class, 4 * size, seed=seed, distortion=distortion
        )
        gx = match_style(gx, size, thicken=thicken)
        train_cls, val_cls = split_classes(gy, (0.8, 0.2), seed=seed)
    else:
        keep = torch.isin(ty, train_digits)
        gx, gy = tx[keep], ty[keep]
        train_cls, val_cls = torch.unique(gy), None
    if out_size != size:
        tx, gx = (
            functional.interpolate(a, size=(out_size, out_size), mode="bilinear").clamp(0, 1)
            for a in (tx, gx)
        )
    if tuple(source_rotations) != (0,) or source_flips:
        r = len(source_rotations) * (2 if source_flips else 1)
        gx, gy = augment_classes(gx, gy, rotations=source_rotations, flips=source_flips)
        train_cls = (train_cls[:, None] * r + torch.arange(r)).reshape(-1)
        val_cls = None if val_cls is None else (val_cls[:, None] * r + torch.arange(r)).reshape(-1)
    if pool_target:
        keep = torch.isin(ty, train_digits)
        px, py = augment_classes(tx[keep], ty[keep], flips=True)
        py = py + int(gy.max()) + 1
        gx, gy = torch.cat([gx, px]), torch.cat([gy, py])
        train_cls = torch.cat([train_cls, torch.unique(py)])
    out["train"] = Episodes(gx, gy, n_way, k_support, k_query, classes=train_cls, seed=next(seeds))
    if val_cls is not None:
        out["source_val"] = Episodes(
            gx, gy, n_way, k_support, k_query, classes=val_cls, seed=next(seeds)
        )
    out["val"] = Episodes(tx, ty, n_way, k_support, k_query, classes=train_digits, seed=next(seeds))
    out["test"] = Episodes(
        tx, ty, n_way, k_support, k_query, classes=list(target_test_classes), seed=next(seeds)
    )
    return out
