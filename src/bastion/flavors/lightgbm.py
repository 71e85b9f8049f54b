"""LightGBM text models through ``lightgbm.Booster(model_str=...)``: a text format, never a pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from bastion.errors import DataError
from bastion.flavors.interface import Flavor, ModelAdapter, require

__all__ = ["LightGBMAdapter", "LightGBMFlavor"]

_BINARY = ("binary", "cross_entropy", "xentropy")
_MULTI = ("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr")


class LightGBMAdapter(ModelAdapter):
    flavor = "lightgbm"

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        objective = str(booster.params.get("objective", "")) if booster.params else ""
        objective = objective or _objective_line(booster)
        kind = objective.split()[0] if objective else ""
        classes: list[Any] | None = None
        if kind in _BINARY:
            classes = [0, 1]
        elif kind in _MULTI:
            classes = list(range(int(booster.num_model_per_iteration())))
        self.objective = kind
        names = [str(n) for n in booster.feature_name()]
        # LightGBM names unnamed inputs Column_0, Column_1, …: those are positions, not names
        named = names and not all(n == f"Column_{i}" for i, n in enumerate(names))
        super().__init__(classes=classes, feature_names=names if named else None, n_features=booster.num_feature())

    def _raw(self, x: Any) -> Any:
        return self.booster.predict(x, num_threads=1)


def _objective_line(booster: Any) -> str:
    text: str = str(booster.model_to_string(num_iteration=0))
    for line in text.splitlines()[:40]:
        if line.startswith("objective="):
            return line[len("objective="):]
    return ""


class LightGBMFlavor(Flavor):
    name: ClassVar[str] = "lightgbm"
    extra: ClassVar[str] = "lightgbm"
    dist: ClassVar[str] = "lightgbm"

    def detect(self, path: Path, head: bytes) -> bool:
        return head.startswith(b"tree\nversion=v") or head.startswith(b"tree\r\nversion=v")

    def load(self, data: bytes, *, what: str, trusted: list[str] | None = None) -> LightGBMAdapter:
        lightgbm = require("lightgbm", extra=self.extra, what="A LightGBM model")
        text = self.precheck(data, what=what)
        try:
            booster = lightgbm.Booster(model_str=text)
        except Exception as e:  # LightGBMError: a refused artifact, never a crash
            raise DataError(f"{what} could not be loaded by LightGBM: {str(e).splitlines()[0][:300]}") from e
        if booster.num_trees() == 0:
            raise DataError(f"{what} holds no trees; it is not a trained LightGBM model.")
        return LightGBMAdapter(booster)

    def precheck(self, data: bytes, *, what: str) -> str:
        """The checks made before LightGBM sees the bytes (a text model, structurally complete); the text."""
        if not self.detect(Path("x"), data[:32]):
            raise DataError(f"{what} is not a LightGBM text model (it must start with 'tree' and 'version=v…'); "
                            "save it with booster.save_model('model.txt').")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{what} is not UTF-8 text, so not a LightGBM text model.") from e
        _check_structure(text, what)  # LightGBM aborts the whole process on some damaged files: check first
        return text


def _check_structure(text: str, what: str) -> None:
    """The tree blocks are where ``tree_sizes`` says and the model ends with ``end of trees``.

    LightGBM parses the blocks at those offsets in parallel, where a parse error cannot be raised to Python and
    terminates the process instead; a truncated or edited file must be refused before it gets there.
    """
    def bad(why: str) -> DataError:
        return DataError(f"{what} is not a complete LightGBM text model: {why}. Save it again with "
                         "booster.save_model('model.txt').")

    start = text.find("\nTree=")
    if start < 0:
        raise bad("it has no 'Tree=' blocks")
    start += 1
    end = text.find("end of trees", start)
    if end < 0:
        raise bad("it does not end with 'end of trees'")
    header = text[:start]
    sizes_line = next((ln for ln in header.splitlines() if ln.startswith("tree_sizes=")), None)
    if sizes_line is None:
        return  # without sizes LightGBM parses sequentially, and raises its errors normally
    try:
        sizes = [int(v) for v in sizes_line[len("tree_sizes="):].split()]
    except ValueError:
        raise bad("its tree_sizes line is not a list of numbers") from None
    data = text.encode("utf-8")
    pos = len(header.encode("utf-8"))
    limit = len(text[:end].encode("utf-8"))
    for i, size in enumerate(sizes):
        if size <= 0 or pos + size > limit or not data.startswith(f"Tree={i}\n".encode(), pos):
            raise bad(f"tree {i} is not where its tree_sizes entry says")
        pos += size
