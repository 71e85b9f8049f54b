"""Imports ``skops.io`` without importing PyTorch: seconds saved in every process that saves or loads a
scikit-learn model where PyTorch happens to be installed.

Importing skops.io lists scikit-learn's estimators (``sklearn.utils.all_estimators``), which walks every
sklearn package with :func:`pkgutil.walk_packages`. The walk imports each package it meets, among them
``sklearn.externals.array_api_compat.torch``, which imports PyTorch, although ``all_estimators`` then
ignores everything under ``sklearn.externals``. While skops.io is first imported here, the walk does not
enter ``sklearn.externals``; the list of estimators (skops's default trusted types) is the same.
"""

from __future__ import annotations

import pkgutil
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

from bastion.flavors.interface import require

__all__ = ["skops_io"]

_SKIPPED = "sklearn.externals"
_LOCK = threading.Lock()


def _walk_packages(
    path: Iterable[Any] | None = None, prefix: str = "", onerror: Callable[[str], object] | None = None
) -> Iterator[pkgutil.ModuleInfo]:
    """:func:`pkgutil.walk_packages` (same order, same error handling) that does not enter sklearn.externals."""
    seen: set[Any] = set()

    def walk(path: Iterable[Any] | None, prefix: str) -> Iterator[pkgutil.ModuleInfo]:
        for info in pkgutil.iter_modules(path, prefix):
            yield info
            if not info.ispkg or info.name == _SKIPPED or info.name.startswith(_SKIPPED + "."):
                continue
            try:
                __import__(info.name)
            except ImportError:
                if onerror is not None:
                    onerror(info.name)
            except Exception:
                if onerror is not None:
                    onerror(info.name)
                else:
                    raise
            else:
                sub = [p for p in getattr(sys.modules[info.name], "__path__", None) or [] if p not in seen]
                seen.update(sub)
                yield from walk(sub, info.name + ".")

    return walk(path, prefix)


def skops_io(what: str = "Loading a scikit-learn model") -> ModuleType:
    """``skops.io`` (imported on first use without PyTorch); a missing skops is a ConfigError naming ``what``."""
    loaded = sys.modules.get("skops.io")
    if loaded is not None:
        return loaded
    with _LOCK:
        real = pkgutil.walk_packages
        pkgutil.walk_packages = _walk_packages
        try:
            return require("skops.io", extra="", what=what)
        finally:
            pkgutil.walk_packages = real
