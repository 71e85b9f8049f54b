"""Artifacts Bastion stores, scans, signs and versions but never loads: ``file`` (opaque on purpose) and the
formats it recognises without a loader of its own (PyTorch, Keras, NumPy, GGUF, safetensors, folders)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, ClassVar

from bastion.errors import UnsafeArtifactError
from bastion.flavors.interface import Flavor

__all__ = ["OpaqueFlavor", "opaque_kind"]


def opaque_kind(path: Path, head: bytes) -> tuple[str, str] | None:
    """``(framework, flavor)`` of a recognised model format Bastion does not load, or None."""
    if path.is_dir():
        return "unknown", "directory"
    if head.startswith(b"PK") and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("data.pkl") for n in names):
            return "pytorch", "torch"
        if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
            return "keras", "keras"
        return None
    if head.startswith(b"\x93NUMPY"):
        return "numpy", "numpy"
    if head.startswith(b"GGUF"):
        return "gguf", "gguf"
    if head[:4] == b"\x89HDF":
        return "keras", "hdf5"
    if path.suffix == ".safetensors":
        return "safetensors", "safetensors"
    return None


class OpaqueFlavor(Flavor):
    """Stored on purpose without a loader: scanned, signed and versioned, never gated or served."""

    name: ClassVar[str] = "file"
    servable: ClassVar[bool] = False

    def __init__(self, name: str = "file") -> None:
        self._name = name

    def detect(self, path: Path, head: bytes) -> bool:
        return False  # only ever chosen explicitly (--flavor file) or through opaque_kind

    def load(self, data: bytes, *, what: str, trusted: list[str] | None = None) -> Any:
        raise UnsafeArtifactError(
            f"{what} has flavor '{self._name}', which Bastion stores but does not load; it cannot be gated or "
            "served. Register the model in a format Bastion loads (skops, ONNX, XGBoost JSON/UBJ, LightGBM text)."
        )
