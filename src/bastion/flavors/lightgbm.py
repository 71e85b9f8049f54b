"""LightGBM text models through ``lightgbm.Booster(model_str=...)``: a text format, never a pickle."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

from bastion.errors import DataError
from bastion.flavors.interface import Flavor, ModelAdapter, require

__all__ = ["LightGBMAdapter", "LightGBMFlavor", "check_model_text"]

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
        check_model_text(text, what)  # LightGBM aborts the whole process on some damaged files: check first
        return text


def check_model_text(text: str, what: str) -> None:
    """Refuse (:class:`DataError`) a LightGBM model text that LightGBM would crash or hang on."""
    _check_structure(text, what)
    _check_values(text, what)


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


# Arrays of a tree block and how many entries each must have: n = num_leaves. LightGBM sizes its vectors by
# num_leaves and checks these counts with a fatal error (inside a parallel region when tree_sizes is given:
# the process terminates); child and feature indices it never checks, and follows them at predict time.
_INNER = ("split_feature", "split_gain", "threshold", "decision_type", "left_child", "right_child",
          "internal_value", "internal_weight", "internal_count")
_LEAF = ("leaf_value", "leaf_weight", "leaf_count")
_REQUIRED_INNER = ("split_feature", "threshold", "decision_type", "left_child", "right_child")
_MAX_CLASSES = 1 << 16


def _check_values(text: str, what: str) -> None:
    """Every count, size and index LightGBM trusts is consistent, before LightGBM reads the text.

    Crafted values otherwise crash or hang the process that loads or serves the model: a huge
    ``num_tree_per_iteration`` segfaults, a ``num_leaves`` that does not match its arrays terminates the
    process, a huge ``num_class`` allocates gigabytes per prediction, and child or feature indices out of
    range (or a cycle) are followed at predict time.
    """
    def bad(why: str) -> DataError:
        return DataError(f"{what} is not a valid LightGBM text model: {why}. Save it again with "
                         "booster.save_model('model.txt').")

    def integer(block: dict[str, str], key: str, where: str, *, low: int, high: int) -> int:
        raw = block.get(key)
        try:
            value = int(raw) if raw is not None else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise bad(f"{where} has {key}={raw!r} (expected an integer in [{low}, {high}])")
        return value

    def numbers(block: dict[str, str], key: str, where: str, count: int, *, kind: type = float) -> list[Any]:
        raw = block.get(key, "")
        parts = raw.split()
        if len(parts) != count:
            raise bad(f"{where} has {len(parts)} {key} entries, where num_leaves requires {count}")
        try:
            return [kind(v) for v in parts]
        except ValueError:
            raise bad(f"{where} has a {key} entry that is not a number") from None

    start = text.find("\nTree=") + 1
    end = text.find("end of trees", start)
    header = _key_values(text[:start])
    blocks = text[start:end].split("\nTree=")
    trees = len(blocks)
    max_feature = integer(header, "max_feature_idx", "the header", low=0, high=len(text))
    names = header.get("feature_names", "").split()
    if len(names) != max_feature + 1:
        raise bad(f"the header names {len(names)} features, where max_feature_idx requires {max_feature + 1}")
    num_class = integer(header, "num_class", "the header", low=1, high=min(_MAX_CLASSES, trees))
    per_iteration = integer(header, "num_tree_per_iteration", "the header", low=1, high=min(num_class, trees))
    if trees % per_iteration:
        raise bad(f"it holds {trees} trees, not a whole number of iterations of {per_iteration}")
    for index, chunk in enumerate(blocks):
        where = f"tree {index}"
        block = _key_values(chunk)
        n = integer(block, "num_leaves", where, low=1, high=max(1, len(chunk)))
        num_cat = integer(block, "num_cat", where, low=0, high=max(0, n - 1))
        numbers(block, "leaf_value", where, n)
        if block.get("is_linear", "0").strip() != "0":
            _check_linear(block, n, max_feature, numbers, bad, where)
        if n == 1:
            continue  # LightGBM reads nothing else of a one-leaf tree
        for key in _LEAF[1:]:
            if key in block:
                numbers(block, key, where, n)
        for key in _REQUIRED_INNER:
            if key not in block:
                raise bad(f"{where} has no {key}")
        for key in _INNER:
            if key in block:
                numbers(block, key, where, n - 1, kind=float if key in ("split_gain", "threshold",
                                                                         "internal_value", "internal_weight")
                        else int)
        features = numbers(block, "split_feature", where, n - 1, kind=int)
        if any(not 0 <= f <= max_feature for f in features):
            raise bad(f"{where} splits on a feature index outside [0, {max_feature}]")
        _check_children(numbers(block, "left_child", where, n - 1, kind=int),
                        numbers(block, "right_child", where, n - 1, kind=int), n, bad, where)
        decisions = numbers(block, "decision_type", where, n - 1, kind=int)
        thresholds = numbers(block, "threshold", where, n - 1)
        if num_cat:
            bounds = numbers(block, "cat_boundaries", where, num_cat + 1, kind=int)
            if bounds[0] != 0 or any(b > a for b, a in pairwise(bounds)):
                raise bad(f"{where} has cat_boundaries that do not rise from 0")
            numbers(block, "cat_threshold", where, bounds[-1], kind=int)
        for decision, threshold in zip(decisions, thresholds, strict=True):
            if decision & 1 and not (threshold.is_integer() and 0 <= threshold < num_cat):
                raise bad(f"{where} has a categorical split whose category index is outside [0, {num_cat})")


def _check_linear(block: dict[str, str], n: int, max_feature: int, numbers: Any, bad: Any, where: str) -> None:
    """A linear tree's per-leaf models: a constant per leaf, then that many feature indices and coefficients."""
    if block["is_linear"].strip() != "1":
        raise bad(f"{where} has is_linear={block['is_linear']!r}")
    numbers(block, "leaf_const", where, n)
    counts = numbers(block, "num_features", where, n, kind=int)
    if any(c < 0 or c > max_feature + 1 for c in counts):
        raise bad(f"{where} gives a leaf more linear features than the model has")
    features = numbers(block, "leaf_features", where, sum(counts), kind=int)
    if any(not 0 <= f <= max_feature for f in features):
        raise bad(f"{where} has a linear feature index outside [0, {max_feature}]")
    numbers(block, "leaf_coeff", where, sum(counts))


def _check_children(left: list[int], right: list[int], n: int, bad: Any, where: str) -> None:
    """Children form one tree under node 0: every internal node but the root and every leaf has one parent."""
    seen_inner = [0] * (n - 1)
    seen_leaf = [0] * n
    for child in (*left, *right):
        if child >= 0:
            if not 0 < child < n - 1:
                raise bad(f"{where} points to node {child}, outside its {n - 1} internal nodes (or back to the root)")
            seen_inner[child] += 1
        else:
            if ~child >= n:
                raise bad(f"{where} points to leaf {~child}, outside its {n} leaves")
            seen_leaf[~child] += 1
    if any(c != 1 for c in seen_inner[1:]) or any(c != 1 for c in seen_leaf):
        raise bad(f"{where} is not a tree (a node or leaf is reached twice or never)")


def _key_values(chunk: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in chunk.splitlines():
        key, sep, value = line.partition("=")
        if sep and key not in out:
            out[key] = value
    return out
