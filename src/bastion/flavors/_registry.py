"""Which flavors exist (built-ins, then ``bastion.flavors`` entry points) and which one an artifact is."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from pathlib import Path

from bastion.errors import ConfigError, DataError
from bastion.flavors.file import OpaqueFlavor, opaque_kind
from bastion.flavors.interface import Flavor
from bastion.flavors.lightgbm import LightGBMFlavor
from bastion.flavors.mitigated import MitigatedFlavor
from bastion.flavors.onnx import OnnxFlavor
from bastion.flavors.sklearn import JoblibFlavor, PickleFlavor, SkopsFlavor
from bastion.flavors.xgboost import XGBoostFlavor

__all__ = ["SERVABLE", "detect_flavor", "flavor_names", "get_flavor", "is_servable"]

log = logging.getLogger("bastion.flavors")

ENTRY_POINT_GROUP = "bastion.flavors"
_HEAD = 4096
#: The order detection tries them in (most specific first).
_BUILTIN: tuple[Flavor, ...] = (
    SkopsFlavor(), OnnxFlavor(), MitigatedFlavor(), XGBoostFlavor(), LightGBMFlavor(), JoblibFlavor(), PickleFlavor(),
)
_OPAQUE = ("file", "directory", "torch", "keras", "hdf5", "numpy", "gguf", "safetensors", "zip")
#: Flavors gates and the server load themselves.
SERVABLE = frozenset({"skops", "onnx", "xgboost", "lightgbm", "pickle", "joblib", "mitigated"})


@functools.lru_cache(maxsize=1)
def _plugins() -> dict[str, Flavor]:
    out: dict[str, Flavor] = {}
    builtin = {f.name for f in _BUILTIN} | set(_OPAQUE)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in builtin:
            log.warning("flavor plugin %s ignored: it would replace the built-in flavor of that name", ep.name)
            continue
        try:
            cls = ep.load()
            flavor = cls() if isinstance(cls, type) else cls
        except Exception as e:  # a broken plugin is reported, never fatal for the built-ins
            log.warning("flavor plugin %s could not be loaded: %s", ep.name, type(e).__name__)
            continue
        if not isinstance(flavor, Flavor) or flavor.name != ep.name:
            log.warning("flavor plugin %s ignored: not a Flavor named %r", ep.name, ep.name)
            continue
        out[ep.name] = flavor
    return out


def flavor_names() -> list[str]:
    """Every flavor name a version may have: built-ins, opaque kinds and plugins."""
    return [f.name for f in _BUILTIN] + list(_OPAQUE) + sorted(_plugins())


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name`` (opaque kinds get a flavor that refuses to load)."""
    for f in _BUILTIN:
        if f.name == name:
            return f
    if name in _OPAQUE:
        return OpaqueFlavor(name)
    plugin = _plugins().get(name)
    if plugin is not None:
        return plugin
    raise ConfigError(f"Unknown model flavor {name!r}; known flavors are {', '.join(flavor_names())}.")


def is_servable(name: str) -> bool:
    """Whether gates and the server may load a version of flavor ``name``."""
    if name in SERVABLE:
        return True
    plugin = _plugins().get(name)
    return bool(plugin is not None and plugin.servable)


def detect_flavor(path: Path) -> tuple[str, str] | None:
    """``(framework, flavor)`` of a model file or folder by its content, or None when it is no model format.

    Raises :class:`DataError` for a pickle or joblib file named as a format that never holds one (``.json``,
    ``.ubj``, ``.txt``, ``.onnx``, ``.skops``, ``.safetensors``): a disguise, refused rather than unpickled.
    """
    if path.is_dir():
        return "unknown", "directory"
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    for flavor in (*_BUILTIN, *_plugins().values()):
        try:
            hit = flavor.detect(path, head)
        except (OSError, ValueError):
            hit = False
        if hit:
            suffix = path.suffix.lower()
            if flavor.name in ("pickle", "joblib") and suffix in _NOT_PICKLE:
                raise DataError(
                    f"{path.name} is a {flavor.name} file, not the {_NOT_PICKLE[suffix]} its name claims; a pickle "
                    "disguised as another format is refused. Save the model in its framework's own format "
                    "(booster.save_model('model.json'), booster.save_model('model.txt'), an ONNX export), or give a "
                    "real pickle a .pkl name (it then goes through the restricted unpickler).")
            return flavor.framework(), flavor.name
    return opaque_kind(path, head)


#: File name suffixes of formats that never hold a pickle, and what they stand for.
_NOT_PICKLE = {".json": "XGBoost JSON", ".ubj": "XGBoost UBJSON", ".txt": "LightGBM text model",
               ".onnx": "ONNX model", ".skops": "skops file", ".safetensors": "safetensors file"}
