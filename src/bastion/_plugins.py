"""Third-party plugin classes from entry points, shared by the seams that take them (checks, alert sinks).

A plugin that fails to import or is not a subclass of the seam's base is logged and skipped: it never hides
the built-ins, and a config naming it still fails closed because the name stays unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint
from typing import Any

__all__ = ["plugin_classes"]


def plugin_classes(eps: Iterable[EntryPoint], base: type[Any], what: str, log: logging.Logger) -> dict[str, type[Any]]:
    """``name -> class`` of every entry point in ``eps`` that loads to a subclass of ``base``.

    ``base`` is typed ``type[Any]`` because the seams' bases are abstract classes (mypy refuses those for ``type[T]``).
    """
    found: dict[str, type[Any]] = {}
    for ep in eps:
        try:
            cls = ep.load()
        except Exception as e:
            log.warning("%s plugin %s failed to load: %s", what, ep.name, e)
            continue
        if not (isinstance(cls, type) and issubclass(cls, base)):
            log.warning("%s plugin %s is not a %s subclass; ignored", what, ep.name, base.__name__)
            continue
        found[ep.name] = cls
    return found
