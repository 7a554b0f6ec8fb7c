"""Seeded noise: draw torch's (hence Pyro's) random numbers from a caller's generator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["seeded_by"]


@contextlib.contextmanager
def seeded_by(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Draw torch's (hence Pyro's) noise from a seed taken from ``generator``."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
