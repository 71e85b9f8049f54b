"""How models are written and read: skops for scikit-learn (safe, audited types), raw files otherwise.

Loading never unpickles: skops artifacts are checked against trusted types before any object is built.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import zipfile
from pathlib import Path
from typing import Any

from bastion.errors import DataError, UnsafeArtifactError

__all__ = ["BASTION_TRUSTED_TYPES", "detect_flavor", "load_skops_bytes", "save_estimator", "untrusted_types"]

# Bastion's own estimator classes: plain data plus predict methods, reviewed here, never widened by an artifact.
BASTION_TRUSTED_TYPES = frozenset({"bastion.gates.mitigate.MitigatedClassifier"})


@functools.lru_cache(maxsize=64)
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def save_estimator(model: Any, dest: Path) -> tuple[Path, str, str]:
    """Write an in-memory estimator with skops; returns ``(path, framework, flavor)``."""
    import skops.io as sio

    mod = type(model).__module__.split(".")[0]
    if mod not in {"sklearn", "fairlearn", "bastion", "xgboost", "lightgbm"}:
        raise DataError(
            f"Cannot save an in-memory {type(model).__name__} from '{mod}': Bastion saves scikit-learn "
            "compatible estimators with skops. Save the model to a file yourself and register the file."
        )
    path = dest / "model.skops"
    try:
        sio.dump(model, path)
    except Exception as e:
        raise DataError(f"skops could not save the {type(model).__name__}: {e}") from e
    return path, _framework_of(model, mod), "skops"


_DISTRIBUTIONS = {"sklearn": "scikit-learn", "bastion": "bastion-mlops"}


def _framework_of(model: Any, mod: str) -> str:
    """``dist==version`` of the estimator's package (the distribution, not the import name); a Bastion
    wrapper (a fairness-mitigated model) also names the scikit-learn it wraps."""
    dist = _DISTRIBUTIONS.get(mod, mod)
    framework = f"{dist}=={_version(dist)}"
    if mod == "bastion":
        framework += f" ({type(model).__name__} over scikit-learn=={_version('scikit-learn')})"
    return framework


def detect_flavor(path: Path) -> tuple[str, str]:
    """``(framework, flavor)`` for a model file or folder, by content."""
    if path.is_dir():
        return "unknown", "directory"
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK") and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if "schema.json" in names:
            return f"scikit-learn=={_version('scikit-learn')}", "skops"
        if any(n.endswith("data.pkl") for n in names):
            return "pytorch", "torch"
        if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
            return "keras", "keras"
        return "unknown", "zip"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"c", b"]", b"}"):
        return "unknown", "pickle"
    if head.startswith(b"\x93NUMPY"):
        return "numpy", "numpy"
    if head.startswith(b"GGUF"):
        return "gguf", "gguf"
    if head[:4] == b"\x89HDF":
        return "keras", "hdf5"
    if path.suffix == ".onnx":
        return "onnx", "onnx"
    if path.suffix == ".safetensors":
        return "safetensors", "safetensors"
    return "unknown", "file"


def untrusted_types(data: bytes) -> list[str]:
    """Types in a skops file that skops does not trust by default."""
    import skops.io as sio

    try:
        return list(sio.get_untrusted_types(data=data))
    except Exception as e:
        raise UnsafeArtifactError(f"The skops artifact cannot be audited ({e}); it was not loaded.") from e


def load_skops_bytes(data: bytes, *, trusted: list[str] | None = None, what: str = "model") -> Any:
    """Load a skops artifact only if every type in it is trusted by skops or named in ``trusted``."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    extra = set(trusted or []) | BASTION_TRUSTED_TYPES
    # skops.io.load audits the tree against the same trusted set before constructing anything, so one
    # parse does both; the separate audit below runs only on failure, to give the precise error.
    try:
        return sio.load(io.BytesIO(data), trusted=sorted(extra) or None)
    except Exception as e:
        bad = [t for t in untrusted_types(data) if t not in extra]  # raises when it cannot be audited
        if bad or isinstance(e, UntrustedTypesFoundException):
            raise UnsafeArtifactError(
                f"{what} contains types that are not trusted: {', '.join(sorted(bad)) or e}. Nothing was loaded. "
                "If you have reviewed them, pass them explicitly: load_model(ref, trusted=[...])."
            ) from e
        raise DataError(f"{what} could not be loaded by skops: {e}") from e
