"""A fairness-mitigated version of a non-scikit-learn model, stored as data: a reference to the base version's
artifact (its ref and digest) plus fairlearn's per-group thresholds, never a re-serialised ONNX/XGBoost/LightGBM
model. The registry resolves the reference (the base artifact is loaded by its flavor, verified by digest)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bastion.errors import DataError
from bastion.flavors.interface import Flavor, FlavorInfo, _classes, dist_version

__all__ = ["FORMAT", "MitigatedFlavor", "MitigationSpec"]

FORMAT = "bastion.mitigated-model"
_HEAD = b'{"format": "' + FORMAT.encode() + b'"'
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}:[1-9][0-9]{0,9}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_BASE_FLAVORS = ("onnx", "xgboost", "lightgbm")
_MAX_GROUPS = 10_000
_MAX_NAMES = 100_000


@dataclass(frozen=True)
class MitigationSpec:
    """The parsed, checked document: what to load (base ref and digest) and the thresholds to apply."""

    base_ref: str
    base_digest: str
    base_flavor: str
    method: str
    sensitive: tuple[str, ...]
    groups: tuple[str, ...]
    params: tuple[tuple[float, ...], ...]
    classes: tuple[Any, ...]
    feature_names: tuple[str, ...]
    base_features: tuple[str, ...]

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT, "schema_version": 1, "method": self.method,
            "base": {"ref": self.base_ref, "digest": self.base_digest, "flavor": self.base_flavor},
            "sensitive": list(self.sensitive), "groups": list(self.groups), "params": [list(p) for p in self.params],
            "classes": list(self.classes), "feature_names": list(self.feature_names),
            "base_features": list(self.base_features),
        }
        return json.dumps(doc).encode("utf-8")  # starts with {"format": "bastion.mitigated-model": detected

    @classmethod
    def parse(cls, data: bytes, *, what: str) -> MitigationSpec:
        """Check every field before anything is loaded; :class:`DataError` names the first that is wrong."""
        def bad(why: str) -> DataError:
            return DataError(f"{what} is not a Bastion mitigated-model document: {why}.")

        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise bad(f"invalid JSON ({type(e).__name__})") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise bad(f"'format' is not {FORMAT!r}")
        if doc.get("schema_version") != 1:
            raise bad(f"schema_version {doc.get('schema_version')!r} is not 1")
        if doc.get("method") != "threshold":
            raise bad(f"method {doc.get('method')!r} is not 'threshold'")
        base = doc.get("base")
        if not isinstance(base, dict):
            raise bad("'base' is missing")
        ref, digest, flavor = base.get("ref"), base.get("digest"), base.get("flavor")
        if not isinstance(ref, str) or not _REF.fullmatch(ref):
            raise bad("'base.ref' is not NAME:VERSION")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise bad("'base.digest' is not a sha256 digest")
        if flavor not in _BASE_FLAVORS:
            raise bad(f"'base.flavor' {flavor!r} is not one of {', '.join(_BASE_FLAVORS)}")

        def names(key: str, limit: int) -> tuple[str, ...]:
            v = doc.get(key)
            if not isinstance(v, list) or len(v) > limit or not all(isinstance(x, str) and x for x in v):
                raise bad(f"'{key}' is not a list of at most {limit} non-empty strings")
            return tuple(v)

        sensitive = names("sensitive", 64)
        groups = names("groups", _MAX_GROUPS)
        feature_names = names("feature_names", _MAX_NAMES)
        base_features = names("base_features", _MAX_NAMES)
        if not sensitive or not set(sensitive) <= set(feature_names) or not set(base_features) <= set(feature_names):
            raise bad("the sensitive and base features must be among 'feature_names'")
        params = doc.get("params")
        if not isinstance(params, list) or len(params) != len(groups):
            raise bad("'params' must hold one row per group")
        rows: list[tuple[float, ...]] = []
        for row in params:
            if not (isinstance(row, list) and len(row) == 6 and all(
                    isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in row)):
                raise bad("each 'params' row is [p0, threshold0, op0, p1, threshold1, op1] of finite numbers")
            p0, _, o0, p1, _, o1 = row
            if not (0.0 <= p0 <= 1.0 and 0.0 <= p1 <= 1.0 and o0 in (0, 1) and o1 in (0, 1)):
                raise bad("a 'params' row has a probability outside [0, 1] or an operator other than 0 or 1")
            rows.append(tuple(float(x) for x in row))
        classes = doc.get("classes")
        if not (isinstance(classes, list) and len(classes) == 2 and all(
                isinstance(c, int | str) and not isinstance(c, bool) for c in classes)):
            raise bad("'classes' must be two labels (integers or strings)")
        return cls(base_ref=ref, base_digest=digest, base_flavor=str(flavor), method="threshold",
                   sensitive=sensitive, groups=groups, params=tuple(rows), classes=tuple(classes),
                   feature_names=feature_names, base_features=base_features)


class MitigatedFlavor(Flavor):
    """Loading gives the checked :class:`MitigationSpec`; the registry then loads the base version it names."""

    name: ClassVar[str] = "mitigated"
    dist: ClassVar[str] = "bastion-mlops"

    def detect(self, path: Path, head: bytes) -> bool:
        return head.lstrip().startswith(_HEAD)

    def load(self, data: bytes, *, what: str, trusted: list[str] | None = None) -> MitigationSpec:
        return MitigationSpec.parse(data, what=what)

    def info(self, model: Any) -> FlavorInfo:
        from bastion.flavors._registry import get_flavor

        base = get_flavor(str(getattr(model, "base_flavor_", "file")))
        framework = f"bastion-mlops=={dist_version('bastion-mlops')} (threshold mitigation over {base.framework()})"
        return FlavorInfo(flavor=self.name, framework=framework,
                          requirements=(f"bastion-mlops=={dist_version('bastion-mlops')}", *base.requirements()),
                          signature=self.signature(model), task="classification",
                          classes=_classes(model),
                          notes=(f"fairness thresholds over {getattr(model, 'base_ref_', '?')} (stored by reference to "
                                 "its artifact)",))
