"""ART (adversarial-robustness-toolbox) imported quietly: without PyTorch it warns "PyTorch not found" on
import, on every gate run, about certification code the gate never uses."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["black_box_classifier", "hop_skip_jump", "membership_inference"]


def _quiet_import(module: str, name: str) -> Any:
    import importlib

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTorch not found", category=UserWarning)
        return getattr(importlib.import_module(module), name)


def hop_skip_jump() -> Any:
    return _quiet_import("art.attacks.evasion", "HopSkipJump")


def membership_inference() -> Any:
    return _quiet_import("art.attacks.inference.membership_inference", "MembershipInferenceBlackBox")


def black_box_classifier() -> Any:
    return _quiet_import("art.estimators.classification", "BlackBoxClassifier")
