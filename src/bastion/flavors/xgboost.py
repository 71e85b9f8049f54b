"""XGBoost native models (JSON or UBJSON) through ``xgboost.Booster``: never a pickle, the JSON's shape is checked
before XGBoost parses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bastion.errors import DataError
from bastion.flavors.interface import Flavor, ModelAdapter, require

__all__ = ["XGBoostAdapter", "XGBoostFlavor", "check_json_schema", "check_trees"]

_MAX_CLASSES = 10_000


class XGBoostAdapter(ModelAdapter):
    flavor = "xgboost"
    input_type = "float"  # XGBoost computes in float32

    def __init__(self, booster: Any, *, objective: str, num_class: int) -> None:
        self.booster = booster
        self.objective = objective
        names = booster.feature_names
        classes: list[Any] | None = None
        if objective.startswith(("binary:", "reg:logistic")) and objective != "binary:hinge":
            classes = [0, 1]
        elif objective in ("multi:softprob", "multi:softmax") and num_class >= 2:
            classes = list(range(num_class))
        self._margin_classes = objective == "multi:softmax"
        super().__init__(classes=classes, feature_names=list(names) if names else None,
                         n_features=int(booster.num_features()))

    def _raw(self, x: Any) -> Any:
        import xgboost

        if self._margin_classes:  # softmax stores labels; ask for the per-class probabilities instead
            dm = xgboost.DMatrix(x, feature_names=self.booster.feature_names)
            margins = self.booster.predict(dm, output_margin=True, validate_features=False)
            e = np.exp(margins - margins.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        out = self.booster.inplace_predict(x, validate_features=False)
        if self.objective == "binary:logitraw":  # margins: the probability is their sigmoid
            return 1.0 / (1.0 + np.exp(-np.asarray(out, dtype=np.float64)))
        return out


def check_json_schema(doc: Any, what: str) -> tuple[str, int]:
    """``(objective, num_class)`` of an XGBoost JSON model document, or :class:`DataError` saying what is wrong."""
    def bad(why: str) -> DataError:
        return DataError(f"{what} is not an XGBoost model in its JSON format: {why}. Save it with "
                         "booster.save_model('model.json') (or .ubj).")

    if not isinstance(doc, dict) or not isinstance(doc.get("learner"), dict):
        raise bad("it has no 'learner' object")
    version = doc.get("version")
    if not (isinstance(version, list) and len(version) == 3 and all(isinstance(v, int) for v in version)):
        raise bad("'version' is not a list of three integers")
    learner = doc["learner"]
    for key in ("gradient_booster", "learner_model_param", "objective"):
        if not isinstance(learner.get(key), dict):
            raise bad(f"'learner.{key}' is missing or not an object")
    objective = learner["objective"].get("name")
    if not isinstance(objective, str):
        raise bad("'learner.objective.name' is missing")
    booster = learner["gradient_booster"].get("name")
    if booster not in ("gbtree", "dart", "gblinear"):
        raise bad(f"'learner.gradient_booster.name' is {booster!r}, not gbtree, dart or gblinear")
    try:
        num_class = int(learner["learner_model_param"].get("num_class", "0"))
    except (TypeError, ValueError):
        raise bad("'learner.learner_model_param.num_class' is not a number") from None
    if not 0 <= num_class <= _MAX_CLASSES:
        raise bad(f"num_class {num_class} is out of range")
    names = learner.get("feature_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad("'learner.feature_names' is not a list of strings")
    return objective, num_class


_MAX_FEATURES = 1 << 24  # XGBoost allocates a feature vector of this width per prediction thread
_MAX_CATEGORY = 1 << 24  # categories are bit positions; XGBoost itself requires them below 2**24


def check_trees(doc: Any, what: str) -> None:
    """Every index XGBoost follows at predict time is in range, and each tree is one tree (no cycle).

    XGBoost checks array lengths when it loads a model but not child or feature indices: a child pointing
    outside the tree, back up to an ancestor, or a split on a feature beyond ``num_feature`` crashes the
    process (SIGSEGV) on the first prediction.
    """
    def bad(why: str) -> DataError:
        return DataError(f"{what} is not a valid XGBoost model: {why}. Save it again with "
                         "booster.save_model('model.json').")

    try:
        learner = doc["learner"]
        num_feature = int(learner["learner_model_param"]["num_feature"])
        gbm = learner["gradient_booster"]
        name = gbm["name"]
    except (KeyError, TypeError, ValueError):
        raise bad("its learner parameters are missing") from None
    if not 0 <= num_feature <= _MAX_FEATURES:
        raise bad(f"num_feature {num_feature} is out of range")
    if name == "gblinear":
        return  # one weight vector; XGBoost checks its length against num_feature and the output groups
    model = (gbm.get("gbtree") if name == "dart" else gbm)
    trees = model.get("model", {}).get("trees") if isinstance(model, dict) else None
    if not isinstance(trees, list):
        raise bad("it has no list of trees")
    for index, tree in enumerate(trees):
        _check_tree(tree, num_feature, f"tree {index}", bad)


def _check_tree(tree: Any, num_feature: int, where: str, bad: Any) -> None:
    try:
        params = tree["tree_param"]
        n = int(params["num_nodes"])
        leaf_vector = int(params.get("size_leaf_vector", "1"))
        left, right = tree["left_children"], tree["right_children"]
        split, split_type = tree["split_indices"], tree.get("split_type", [])
    except (KeyError, TypeError, ValueError):
        raise bad(f"{where} lacks its node arrays") from None
    if leaf_vector not in (0, 1):
        raise bad(f"{where} is a multi-target tree (size_leaf_vector={leaf_vector}), which Bastion does not load")
    arrays = (left, right, split, tree.get("split_conditions"), tree.get("default_left"))
    if n < 1 or any(not isinstance(a, list) or len(a) != n for a in arrays):
        raise bad(f"{where} has node arrays whose lengths differ from num_nodes={n}")
    if split_type and (not isinstance(split_type, list) or len(split_type) != n):
        raise bad(f"{where} has {len(split_type)} split types for {n} nodes")
    parents = [0] * n
    for i in range(n):
        lc, rc = left[i], right[i]
        if not (type(lc) is int and type(rc) is int):
            raise bad(f"{where} has a child index that is not an integer")
        if lc == -1 and rc == -1:
            continue
        if not (0 < lc < n and 0 < rc < n):
            raise bad(f"{where} node {i} points to a child outside its {n} nodes (or back to the root)")
        parents[lc] += 1
        parents[rc] += 1
        feature = split[i]
        if type(feature) is not int or not 0 <= feature < max(num_feature, 1):
            raise bad(f"{where} node {i} splits on feature {feature!r}, outside [0, {num_feature})")
    if any(p != 1 for p in parents[1:]):
        raise bad(f"{where} is not a tree (a node is reached twice or never)")
    categorical = [i for i, t in enumerate(split_type) if t == 1]
    if categorical:
        cats, nodes = tree.get("categories", []), tree.get("categories_nodes", [])
        segments, sizes = tree.get("categories_segments", []), tree.get("categories_sizes", [])
        if not (isinstance(cats, list) and len(nodes) == len(segments) == len(sizes)) or sorted(nodes) != categorical:
            raise bad(f"{where} has categorical splits its category lists do not describe")
        if any(type(c) is not int or not 0 <= c < _MAX_CATEGORY for c in cats):
            raise bad(f"{where} has a category outside [0, {_MAX_CATEGORY})")
        for seg, size in zip(segments, sizes, strict=True):
            if type(seg) is not int or type(size) is not int or seg < 0 or size < 0 or seg + size > len(cats):
                raise bad(f"{where} has a category segment outside its category list")


class XGBoostFlavor(Flavor):
    name: ClassVar[str] = "xgboost"
    extra: ClassVar[str] = "xgboost"
    dist: ClassVar[str] = "xgboost"

    def detect(self, path: Path, head: bytes) -> bool:
        if path.suffix.lower() == ".ubj":
            return head[:1] == b"{"
        stripped = head.lstrip()
        return (stripped[:1] == b"{" and b'"learner"' in head[:4096]) or (
            path.suffix.lower() == ".json" and stripped[:1] == b"{" and _has_learner(path))

    def precheck(self, data: bytes, *, what: str) -> tuple[str, int]:
        """The checks made before XGBoost sees the bytes: a JSON model's shape (UBJSON goes to XGBoost's own
        parser); its objective and number of classes, or ``("", 0)`` for UBJSON."""
        if data.lstrip()[:1] == b"{" and data.lstrip()[1:2] in (b'"', b" ", b"\n", b"\r", b"\t", b"}"):
            try:
                doc = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise DataError(f"{what} is not valid JSON ({type(e).__name__} at byte {getattr(e, 'pos', '?')}); "
                                "save it with booster.save_model('model.json').") from e
            return check_json_schema(doc, what)
        return "", 0

    def load(self, data: bytes, *, what: str, trusted: list[str] | None = None) -> XGBoostAdapter:
        xgboost = require("xgboost", extra=self.extra, what="An XGBoost model")
        objective, num_class = self.precheck(data, what=what)
        raw = bytearray(data)
        booster = xgboost.Booster()
        try:
            booster.load_model(raw)
        except Exception as e:  # XGBoostError, ValueError: a refused artifact, never a crash
            raise DataError(f"{what} could not be loaded by XGBoost: {str(e).splitlines()[0][:300]}") from e
        # what XGBoost itself holds now (never the bytes we parsed: JSON with repeated keys, or UBJSON, may read
        # differently), checked before anything predicts with it
        try:
            loaded = json.loads(bytes(booster.save_raw("json")))
        except Exception as e:
            raise DataError(f"{what} could not be re-read from XGBoost: {str(e).splitlines()[0][:300]}") from e
        check_trees(loaded, what)
        if not objective:
            cfg = json.loads(booster.save_config())
            objective = str(cfg["learner"]["objective"]["name"])
            num_class = int(cfg["learner"]["learner_model_param"].get("num_class", "0"))
        return XGBoostAdapter(booster, objective=objective, num_class=num_class)


def _has_learner(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return b'"learner"' in f.read(1 << 20)
    except OSError:
        return False
