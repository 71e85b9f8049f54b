"""scikit-learn models: skops artifacts (types audited before anything is built), and pickle/joblib files only
through the scanner's restricted unpickler, with an offer to convert them to skops."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, ClassVar

from bastion.errors import DataError, UnsafeArtifactError
from bastion.flavors._skops import skops_io
from bastion.flavors.interface import Flavor, dist_version

__all__ = ["BASTION_TRUSTED_TYPES", "JoblibFlavor", "PickleFlavor", "SkopsFlavor", "load_skops_bytes",
           "restricted_unpickle", "save_estimator", "untrusted_types"]

# Bastion's own estimator classes: plain data plus predict methods, reviewed here, never widened by an artifact.
BASTION_TRUSTED_TYPES = frozenset({"bastion.gates.mitigate.MitigatedClassifier"})
_SAVABLE = {"sklearn", "fairlearn", "bastion", "xgboost", "lightgbm"}


_DISTRIBUTIONS = {"sklearn": "scikit-learn", "bastion": "bastion-mlops"}


def _framework_of(model: Any) -> str:
    """``dist==version`` of the estimator's package (the distribution, not the import name: never
    "bastion==unknown"); a Bastion wrapper (a fairness-mitigated model) also names the scikit-learn it wraps."""
    mod = type(model).__module__.split(".")[0]
    dist = _DISTRIBUTIONS.get(mod, mod)
    framework = f"{dist}=={dist_version(dist)}"
    if mod == "bastion":
        framework += f" ({type(model).__name__} over scikit-learn=={dist_version('scikit-learn')})"
    return framework


def save_estimator(model: Any, dest: Path) -> tuple[Path, str, str]:
    """Write an in-memory estimator with skops; returns ``(path, framework, flavor)``."""
    sio = skops_io("Saving a scikit-learn model")
    mod = type(model).__module__.split(".")[0]
    if mod not in _SAVABLE:
        raise DataError(
            f"Cannot save an in-memory {type(model).__name__} from '{mod}': Bastion saves scikit-learn "
            "compatible estimators with skops. Save the model to a file yourself and register the file."
        )
    path = dest / "model.skops"
    try:
        sio.dump(model, path)
    except Exception as e:
        raise DataError(f"skops could not save the {type(model).__name__}: {e}") from e
    return path, _framework_of(model), "skops"


def untrusted_types(data: bytes) -> list[str]:
    """Types in a skops file that skops does not trust by default."""
    sio = skops_io()

    try:
        return list(sio.get_untrusted_types(data=data))
    except Exception as e:
        raise UnsafeArtifactError(f"The skops artifact cannot be audited ({e}); it was not loaded.") from e


def load_skops_bytes(data: bytes, *, trusted: list[str] | None = None, what: str = "model") -> Any:
    """Load a skops artifact only if every type in it is trusted by skops or named in ``trusted``."""
    sio = skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException

    extra = set(trusted or []) | BASTION_TRUSTED_TYPES
    _code_in_schema(data, what)  # before skops builds anything: state that a class exec()s when it is rebuilt
    # skops.io.load audits the tree against the same trusted set before constructing anything, so one
    # parse does both; the separate audit below runs only on failure, to give the precise error.
    try:
        model = sio.load(io.BytesIO(data), trusted=sorted(extra) or None)
    except Exception as e:
        bad = [t for t in untrusted_types(data) if t not in extra]  # raises when it cannot be audited
        if bad or isinstance(e, UntrustedTypesFoundException):
            raise UnsafeArtifactError(
                f"{what} contains types that are not trusted: {', '.join(sorted(bad)) or e}. Nothing was loaded. "
                "If you have reviewed them, pass them explicitly: load_model(ref, trusted=[...])."
            ) from e
        raise DataError(f"{what} could not be loaded by skops: {e}") from e
    from bastion.scan._signatures import unsafe_state

    unsafe = unsafe_state(model)  # trusted types, but state that makes the model act on the host at predict time
    if unsafe is not None:
        raise UnsafeArtifactError(f"{what} carries {unsafe}: it would act on the host when it predicts. Nothing was "
                                  "returned; re-save the model with the parameter at its safe value.")
    return model


def _code_in_schema(data: bytes, what: str) -> None:
    """Refuse a skops file whose object state holds code a trusted class runs while skops rebuilds it (scipy's
    distributions exec() their ``_parse_arg_template`` in ``__setstate__``); skops audits types, not values."""
    import json

    from bastion.scan._signatures import CODE_ATTRIBUTES, scipy_argparser_ok

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            schema = json.loads(z.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise UnsafeArtifactError(f"{what} has no readable skops schema ({e}); it was not loaded.") from e
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in CODE_ATTRIBUTES:
                    text = value.get("content") if isinstance(value, dict) else None
                    try:
                        text = json.loads(text) if isinstance(text, str) else None
                    except ValueError:
                        text = None
                    if not scipy_argparser_ok(text):
                        raise UnsafeArtifactError(
                            f"{what} sets {key} to code scipy did not generate (scipy exec()s it when the "
                            "distribution is rebuilt). Nothing was loaded.")
                stack.append(value)


def restricted_unpickle(data: bytes, *, what: str, trusted: list[str] | None = None) -> Any:
    """Unpickle (pickle or joblib) through the scanner's restricted unpickler: only allowlisted globals, each
    call checked against its signature; a scanner miss is a refused load, never code execution."""
    from bastion.scan.restricted import restricted_loads

    try:
        return restricted_loads(data, allow=tuple(trusted or ()))
    except UnsafeArtifactError as e:
        raise UnsafeArtifactError(
            f"{what} was refused by the restricted unpickler: {e} Nothing was executed. Save the model with "
            "skops, or review the types and pass them as trusted."
        ) from e
    except Exception as e:
        raise DataError(f"{what} could not be unpickled: {type(e).__name__}: {str(e)[:300]}") from e


class SkopsFlavor(Flavor):
    name: ClassVar[str] = "skops"
    dist: ClassVar[str] = "scikit-learn"

    def detect(self, path: Path, head: bytes) -> bool:
        if not (head.startswith(b"PK") and zipfile.is_zipfile(path)):
            return False
        with zipfile.ZipFile(path) as z:
            return "schema.json" in z.namelist()

    def load(self, data: bytes, *, what: str, trusted: list[str] | None = None) -> Any:
        return load_skops_bytes(data, trusted=trusted, what=what)

    def requirements(self) -> tuple[str, ...]:
        return (self.framework(), f"skops=={dist_version('skops')}")


_PICKLE_START = (b"\x80", b"(", b"c", b"]", b"}")
_COMPRESSED = (b"\x1f\x8b", b"x\x9c", b"x\x01", b"x\xda", b"\xfd7zXZ", b"BZh", b"\x04\x22\x4d\x18")


class PickleFlavor(Flavor):
    """A plain pickle: loaded only through the restricted unpickler, and only once scanned clean."""

    name: ClassVar[str] = "pickle"
    dist: ClassVar[str] = "scikit-learn"

    def detect(self, path: Path, head: bytes) -> bool:
        return head[:1] in _PICKLE_START and path.suffix.lower() not in (".joblib", ".jbl")

    def load(self, data: bytes, *, what: str, trusted: list[str] | None = None) -> Any:
        return restricted_unpickle(data, what=what, trusted=trusted)


class JoblibFlavor(PickleFlavor):
    """A joblib file (pickle with inline NumPy arrays, maybe compressed): restricted unpickler only."""

    name: ClassVar[str] = "joblib"

    def detect(self, path: Path, head: bytes) -> bool:
        if path.suffix.lower() in (".joblib", ".jbl"):
            return head[:1] in _PICKLE_START or head.startswith(_COMPRESSED)
        return (head[:1] == b"\x80" and b"joblib" in head) or head.startswith(b"ZF")
