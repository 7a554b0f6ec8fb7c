"""The run folder that ``bayesmeta run`` writes: its name, its files, and reading them back.

A run folder ``<time>-<learner>-<data>-<K>shot/`` holds

- ``config.json``: the resolved :class:`~bayesmeta.runs.config.RunConfig`, written first;
- ``checkpoint.safetensors``: the training checkpoint, written during meta-training, from
  which ``bayesmeta resume`` continues an interrupted run;
- ``history.json``, ``metrics.json``, ``model.safetensors`` and the figures, written when
  the run ends.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bayesmeta.errors import BayesmetaError
from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.data import data_families, data_family
from bayesmeta.runs.renames import upgrade_settings

__all__ = [
    "CHECKPOINT",
    "FINISHED_FILES",
    "RunFolderError",
    "new_run_dir",
    "read_json",
    "read_run_config",
]

CHECKPOINT = "checkpoint.safetensors"
FINISHED_FILES = ("config.json", "metrics.json", "history.json", "model.safetensors")


class RunFolderError(BayesmetaError, ValueError):
    """A folder is not a run folder, or one of its files is unreadable."""


def new_run_dir(config: RunConfig, out_dir: str | Path) -> Path:
    """Create ``out_dir/<time>-<learner>-<data>-<K>shot[-n]/`` and write its ``config.json``."""
    out_dir = Path(out_dir)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{config.learner}-{config.data}-{config.k_support}shot"
    run_dir, suffix = out_dir / stem, 1
    while run_dir.exists():
        suffix += 1
        run_dir = out_dir / f"{stem}-{suffix}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    return run_dir


def read_json(path: Path) -> Any:
    """The JSON in ``path``; :class:`RunFolderError` naming the file if it cannot be read."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFolderError(f"cannot read {path}: {err}") from err


def read_run_config(run_dir: Path) -> RunConfig:
    """A run folder's ``config.json`` as a validated :class:`RunConfig`.

    Raises
    ------
    RunFolderError
        If ``run_dir`` is not a folder, has no readable ``config.json``, or
        the file's settings are not a valid config.

    """
    if not run_dir.is_dir():
        raise RunFolderError(f"run_dir {run_dir} is not a folder")
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunFolderError(
            f"{run_dir} is not a run folder: it has no config.json "
            "(run folders are written by `bayesmeta run`)"
        )
    try:
        raw = upgrade_settings(read_json(path), source=str(path), warn=False)
        if isinstance(raw, dict) and "backbone" not in raw and "data" in raw:
            # written before the backbone setting, when every image run had a Conv4
            images = raw["data"] in data_families() and data_family(raw["data"]).classification
            raw["backbone"] = "conv4" if images else None
        return RunConfig(**raw)  # unknown or invalid settings raise
    except (TypeError, ValueError) as err:
        raise RunFolderError(f"{path} is not a valid RunConfig: {err}") from err
