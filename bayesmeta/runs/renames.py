"""Run settings renamed in issue 17, read under their old names for one release.

Support and query counts are ``k_support`` / ``k_query`` everywhere (tasks,
learners, configs, the command line), and test-time adaptation steps are
``adapt_steps`` for every learner. A TOML file or mapping that uses an old key
warns and is read as the new one; a run folder's ``config.json`` written
before the rename is read silently (the user did not write it).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from bayesmeta.learners.registry import run_learner

__all__ = ["RENAMED_SETTINGS", "upgrade_settings"]

#: Old run-setting names and their new ones.
RENAMED_SETTINGS: dict[str, str] = {
    "shots": "k_support",
    "query": "k_query",
    "eval_query": "eval_k_query",
    "eval_inner_steps": "adapt_steps",
}


def upgrade_settings(
    raw: Mapping[str, Any], *, source: str = "the config", warn: bool = True
) -> dict[str, Any]:
    """``raw`` with every old setting name replaced by its new one.

    ``eval_inner_steps`` (the gradient learners' test-time steps) becomes
    ``adapt_steps`` for a learner that reads ``inner_steps``, ``None`` standing
    for ``inner_steps`` as it did; for the other learners (whose ``adapt_steps``
    was already their own) it had no effect and is dropped.

    Parameters
    ----------
    raw
        Settings by key, as a TOML file or ``config.json`` gives them.
    source
        Where they came from, for the messages.
    warn
        Warn (``DeprecationWarning``) for each old name: ``False`` for files
        that bayesmeta wrote itself (run folders).

    Raises
    ------
    ValueError
        If a setting is given under both its old and its new name.

    """
    out = dict(raw)
    learner = out.get("learner", "maml")
    for old, new in RENAMED_SETTINGS.items():
        if old not in out:
            continue
        value = out.pop(old)
        if warn:
            warnings.warn(
                f"{source}: the setting {old} is renamed {new}; write {new} instead (the old "
                "name goes in the next release)",
                DeprecationWarning,
                stacklevel=3,
            )
        if old == "eval_inner_steps":
            if not isinstance(learner, str) or "inner_steps" not in _reads(learner):
                continue  # only the gradient learners read it; adapt_steps stays theirs
            value = out.get("inner_steps", 5) if value is None else value
            if not warn:  # an old config.json holds both, adapt_steps for the SVI learners
                out[new] = value
                continue
        if new in out:
            raise ValueError(f"{source}: {old} is the old name of {new}; give only {new}")
        out[new] = value
    return out


def _reads(learner: str) -> frozenset[str]:
    try:
        return run_learner(learner).reads
    except ValueError:
        return frozenset()  # an unknown learner is refused by RunConfig itself
