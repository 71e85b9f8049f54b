"""Kept for imports from before the flavors seam: skops helpers now live in :mod:`bastion.flavors.sklearn`."""

from __future__ import annotations

from pathlib import Path

from bastion.flavors import detect_flavor as _detect
from bastion.flavors.sklearn import BASTION_TRUSTED_TYPES, load_skops_bytes, save_estimator, untrusted_types

__all__ = ["BASTION_TRUSTED_TYPES", "detect_flavor", "load_skops_bytes", "save_estimator", "untrusted_types"]


def detect_flavor(path: Path) -> tuple[str, str]:
    """``(framework, flavor)`` for a model file or folder, by content (``("unknown", "file")`` when unknown)."""
    return _detect(path) or ("unknown", "file")
