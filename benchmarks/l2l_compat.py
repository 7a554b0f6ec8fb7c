"""Load learn2learn 0.2.0's ``MAML`` for benchmarks, without its heavy package deps.

Benchmark-only helper: bayesmeta does not depend on learn2learn. We time our
MAML against learn2learn's, the reference implementation, and we want to run
learn2learn's own, unmodified ``learn2learn/algorithms/maml.py``.

Why a helper instead of a plain ``from learn2learn.algorithms import MAML``:
``learn2learn/__init__.py`` eagerly imports every subpackage (``data``,
``gym``, ``text``, ``vision``, ...), which unconditionally import
``torchvision``, ``gym``, ``requests``, ``PIL``, ``scipy`` and ``tqdm``.
PyPI's torchvision cannot be imported beside our torch 2.13.0+cpu
(``RuntimeError: operator torchvision::nms does not exist``) and ``gym`` is
unmaintained, so the full package cannot be imported here, and Python always
runs a package's ``__init__.py`` before any of its submodules.

None of that is needed by MAML itself. ``learn2learn/algorithms/maml.py``
imports only ``torch``, ``learn2learn.algorithms.base_learner`` (torch only)
and ``learn2learn.utils`` (torch + stdlib). So, instead of stubbing
third-party modules, we register the two *package* modules ``learn2learn``
and ``learn2learn.algorithms`` in ``sys.modules`` without executing their
``__init__.py`` (which only re-export names) and then import the real,
installed ``learn2learn.algorithms.maml`` file normally. No learn2learn code
is patched and no fake ``torchvision``/``gym`` is ever created.

Side effect (documented, benchmark processes only): after the shim has run,
``learn2learn`` in this process is that partially initialised package; only
``learn2learn.algorithms.MAML`` / ``maml_update`` and
``learn2learn.utils.clone_module`` / ``update_module`` (plus any submodule
whose own deps are importable) are available. If ``learn2learn`` had already
been imported in full by the process, that module is reused untouched.

Install learn2learn first with ``bash benchmarks/install_learn2learn.sh``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib import metadata
from types import ModuleType

__all__ = ["LEARN2LEARN_VERSION", "import_learn2learn_maml"]

LEARN2LEARN_VERSION = "0.2.0"

_INSTALL_HINT = (
    "learn2learn {version} is not installed in this Python ({exe}). "
    "It is a benchmark-only dependency; install it with:\n"
    "    bash benchmarks/install_learn2learn.sh"
)


def _install_error(detail: str | None = None) -> ImportError:
    msg = _INSTALL_HINT.format(version=LEARN2LEARN_VERSION, exe=sys.executable)
    if detail:
        msg = f"{msg}\n({detail})"
    return ImportError(msg, name="learn2learn")


def _register_package_without_init(name: str) -> ModuleType:
    """Put package ``name`` into ``sys.modules`` without running its ``__init__``.

    The module gets its real spec, ``__file__`` and ``__path__``, so normal
    ``import name.submodule`` statements inside learn2learn keep working and
    load the real files from site-packages.
    """
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.submodule_search_locations is None:
            raise _install_error(f"package {name!r} not found")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
    # (Re)attach to the parent even if the module was already there, e.g. left
    # behind by an earlier, failed full ``import learn2learn``.
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def _check_version() -> None:
    try:
        version = metadata.version("learn2learn")
    except metadata.PackageNotFoundError as exc:
        raise _install_error() from exc
    if version != LEARN2LEARN_VERSION:
        raise ImportError(
            f"learn2learn {version} is installed, but the benchmarks are pinned to "
            f"{LEARN2LEARN_VERSION}; reinstall with: "
            "bash benchmarks/install_learn2learn.sh",
            name="learn2learn",
        )


def import_learn2learn_maml() -> type:
    """Return ``learn2learn.algorithms.MAML`` (learn2learn 0.2.0, unmodified).

    Raises ImportError with install instructions if learn2learn is missing.
    """
    loaded = sys.modules.get("learn2learn")
    algorithms = getattr(loaded, "algorithms", None)
    maml_cls = getattr(algorithms, "MAML", None)
    if isinstance(maml_cls, type):
        # Already imported (in full, or by an earlier call): reuse it as is.
        return maml_cls

    _check_version()
    try:
        l2l = _register_package_without_init("learn2learn")
        l2l_algorithms = _register_package_without_init("learn2learn.algorithms")
        maml_module = importlib.import_module("learn2learn.algorithms.maml")
        utils_module = importlib.import_module("learn2learn.utils")
        version_module = importlib.import_module("learn2learn._version")
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.startswith("learn2learn"):
            raise _install_error(str(exc)) from exc
        raise

    # Re-export what the real ``__init__`` files would have, for the pieces
    # we loaded, so ``from learn2learn.algorithms import MAML`` and
    # ``learn2learn.clone_module`` work in the rest of the benchmark process.
    l2l_algorithms.MAML = maml_module.MAML  # type: ignore[attr-defined]
    l2l_algorithms.maml_update = maml_module.maml_update  # type: ignore[attr-defined]
    l2l.__version__ = version_module.__version__  # type: ignore[attr-defined]
    l2l.clone_module = utils_module.clone_module  # type: ignore[attr-defined]
    l2l.update_module = utils_module.update_module  # type: ignore[attr-defined]
    l2l.detach_module = utils_module.detach_module  # type: ignore[attr-defined]

    maml: type = maml_module.MAML
    return maml
