"""Run a gate: every check of a policy on one model version, stored, attested (signed when possible), audited.

``run_gate`` is the one library entry point the CLI, the demo and the server call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bastion.errors import BastionError, ConfigError, DataError
from bastion.gates import _signing
from bastion.gates.attestation import build_statement, statement_digest
from bastion.gates.checks import get_check
from bastion.gates.checks.interface import CheckContext, CheckResult, jsonable
from bastion.gates.policy import Policy, load_policy

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["GateResult", "labels_to_binary", "load_gate_model", "predict_frame", "read_frame", "run_gate", "to_binary"]

log = logging.getLogger("bastion.gates")


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate run: every check's result and what they ran on."""

    ref: str
    model_digest: str
    policy_name: str
    policy_version: int
    policy_digest: str
    passed: bool
    checks: tuple[CheckResult, ...]
    datasets: dict[str, Any]
    started_at: str
    finished_at: str
    actor: str
    gate_id: str
    duration_s: float = 0.0
    attestation: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_required(self) -> list[str]:
        return [c.name for c in self.checks if c.required and not c.passed]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "gate_id": self.gate_id,
            "ref": self.ref,
            "model_digest": self.model_digest,
            "policy": {"name": self.policy_name, "version": self.policy_version, "digest": self.policy_digest},
            "passed": self.passed,
            "failed_required": self.failed_required,
            "checks": [c.to_dict() for c in self.checks],
            "datasets": jsonable(self.datasets),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3),
            "actor": self.actor,
            "attestation": self.attestation,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateResult:
        pol = d.get("policy") or {}
        return cls(
            ref=d["ref"], model_digest=d["model_digest"], policy_name=pol.get("name", ""),
            policy_version=int(pol.get("version", 0)), policy_digest=pol.get("digest", ""),
            passed=bool(d["passed"]), checks=tuple(CheckResult.from_dict(c) for c in d.get("checks", [])),
            datasets=dict(d.get("datasets") or {}), started_at=d.get("started_at", ""),
            finished_at=d.get("finished_at", ""), actor=d.get("actor", ""), gate_id=d.get("gate_id", ""),
            duration_s=float(d.get("duration_s", 0.0)), attestation=dict(d.get("attestation") or {}),
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def read_frame(project: ProjectHandle, data: pd.DataFrame | str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A DataFrame from a frame, a Parquet/CSV path or a dataset reference, and where it came from."""
    if isinstance(data, pd.DataFrame):
        hashed = pd.util.hash_pandas_object(data, index=False).to_numpy()
        h = hashlib.sha256(",".join(map(str, data.columns)).encode() + hashed.tobytes()).hexdigest()
        return data, {"source": "dataframe", "digest": f"sha256:{h}", "rows": len(data)}
    path = Path(data)
    if path.exists():
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        name = path.name.lower()
        try:
            if name.endswith((".parquet", ".pq")):
                df = pd.read_parquet(path)
            elif name.endswith((".csv", ".csv.gz", ".tsv")):
                df = pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
            else:
                raise DataError(f"Cannot read {path}: expected a .parquet or .csv file.")
        except (OSError, ValueError) as e:
            raise DataError(f"Cannot read {path}: {e}.") from e
        return df, {"source": str(path), "digest": f"sha256:{digest.hexdigest()}", "rows": len(df)}
    ref = str(data)
    if ":" in ref or "@" in ref:
        dv = project.get_dataset(ref)
        return project.read_dataset(dv.ref), {"source": dv.ref, "digest": dv.digest, "rows": dv.rows}
    raise DataError(f"Data {data!r} is neither a file nor a dataset reference (NAME:VERSION or NAME@ALIAS).")


def labels_to_binary(values: np.ndarray, positive_label: Any) -> np.ndarray:
    """1 where ``values`` equals the positive label (compared as given, then as text)."""
    v = np.asarray(values)
    hit = v == positive_label
    if not np.any(hit) and not isinstance(positive_label, str):
        hit = v.astype(str) == str(positive_label)
    elif not np.any(hit):
        hit = v.astype(str) == positive_label
    out: np.ndarray = np.asarray(hit).astype(np.int64)
    return out


def to_binary(pred: Any, model: Any, positive_label: Any = None) -> np.ndarray:
    classes = list(getattr(model, "classes_", [0, 1]))
    pos = positive_label if positive_label is not None else classes[-1]
    return labels_to_binary(np.asarray(pred), pos)


def predict_frame(model: Any, features: pd.DataFrame, positive_label: Any, task: str) -> tuple[np.ndarray, Any]:
    """(predictions, positive-class scores or None); predictions are 0/1 for classifiers."""
    raw = model.predict(features)
    if task == "regression":
        return np.asarray(raw, dtype=np.float64), None
    y_pred = labels_to_binary(np.asarray(raw), positive_label)
    score = None
    if hasattr(model, "predict_proba"):
        from bastion.gates.checks._tabular import positive_index

        p = np.asarray(model.predict_proba(features))
        if p.ndim == 2 and p.shape[1] == 2:
            score = p[:, positive_index(model, positive_label)].astype(np.float64)
    return y_pred, score


def load_gate_model(project: ProjectHandle, ref: str) -> Any:
    """Load a model version safely (the registry trusts Bastion's own mitigated-model type itself)."""
    return project.load_model(ref)


def _task_and_label(model: Any, y: pd.Series, policy: Policy) -> tuple[str, Any]:
    classes = getattr(model, "classes_", None)
    if classes is None and pd.api.types.is_float_dtype(y) and y.nunique() > 2:
        return "regression", None
    if policy.positive_label is not None:
        pos = policy.positive_label
    elif classes is not None and len(classes) == 2:
        pos = classes[1]
    else:
        uniq = sorted(pd.unique(y.dropna()).tolist(), key=str)
        if len(uniq) != 2:
            raise ConfigError(
                f"{policy.where('positive_label')}: cannot tell the positive class of target with values "
                f"{uniq[:5]}; set 'positive_label' in the policy."
            )
        pos = 1 if set(uniq) <= {0, 1} else uniq[-1]
    if classes is not None and len(classes) > 2:
        raise ConfigError(f"The gate supports binary classifiers and regressors; the model has {len(classes)} classes.")
    return "classification", (pos.item() if hasattr(pos, "item") else pos)


def _feature_frame(model: Any, df: pd.DataFrame, target: str) -> pd.DataFrame:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise DataError(f"The data lacks feature columns the model was trained on: {missing}.")
        return df[list(names)]
    out = df.drop(columns=[target])
    n = getattr(model, "n_features_in_", None)
    if n is not None and out.shape[1] != n:  # positional inputs: a wrong width is the data's fault, said so
        raise DataError(f"The model takes {n} unnamed inputs in order, but the data has {out.shape[1]} columns "
                        f"besides the target '{target}': {list(out.columns)[:12]}. Give exactly its inputs and the "
                        "target (or register the model with names: --dataset, or --feature-names).")
    return out


def _row_keys(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """One hash per row over ``cols``, equal for equal values whatever the storage type (int/float, category/str)."""
    norm: dict[str, pd.Series] = {}
    for c in cols:
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            norm[c] = s.astype("float64")
        else:
            norm[c] = s.astype(object).map(str)
    keys: np.ndarray = pd.util.hash_pandas_object(pd.DataFrame(norm, index=frame.index), index=False).to_numpy()
    return keys


def _seen_in_training(
    df: pd.DataFrame, features: list[str], target: str, train: pd.DataFrame | None
) -> np.ndarray | None:
    """Which evaluation rows (features and target) are rows of the training data; ``None`` when unknown."""
    cols = [*features, target]
    if train is None or train.empty or df.empty or any(c not in train.columns for c in cols):
        return None
    try:
        seen: np.ndarray = np.isin(_row_keys(df, cols), _row_keys(train, cols))
    except (TypeError, ValueError) as e:  # unhashable cells (lists, dicts): no comparison, said so in the log
        log.warning("cannot compare evaluation rows with training rows: %s", e)
        return None
    return seen


#: Evaluation data with more than this share of rows identical to training rows is refused.
_MAX_SEEN_SHARE = 0.5

#: Checks that measure the training data itself (group shares; membership inference against training rows).
_NEED_TRAINING_DATA = ("diversity", "privacy")


def _training_frame(project: ProjectHandle, mv: Any, target: str) -> tuple[pd.DataFrame | None, list[dict[str, Any]]]:
    """The first dataset version in the model's lineage that has the target column."""
    infos = []
    for ref in list(getattr(mv, "datasets", []) or []):
        try:
            dv = project.get_dataset(ref)
            df = project.read_dataset(dv.ref)
        except BastionError as e:
            log.warning("lineage dataset %s unreadable: %s", ref, e)
            continue
        infos.append({"ref": dv.ref, "digest": dv.digest, "rows": dv.rows})
        if target in df.columns:
            return df, infos
    return None, infos


def run_gate(
    project: ProjectHandle,
    ref: str,
    policy: Policy | str | Path | dict[str, Any],
    data: pd.DataFrame | str | Path,
    target: str | None = None,
    *,
    train_data: pd.DataFrame | None = None,
    sign: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> GateResult:
    """Run every check of ``policy`` on model version ``ref`` against holdout ``data``.

    Stores the result (``"gate"``) and the in-toto attestation (``"attestation"``, signed when the
    project has a signing key and ``sign`` is true) with the version, and writes an audit entry.

    Raises
    ------
    ConfigError, DataError
        The policy or the data is wrong (unknown check, missing column, …); nothing is stored.
    """
    t0 = time.perf_counter()
    started = _now()
    pol = load_policy(policy)
    target = target or pol.target
    if not target:
        raise ConfigError("No target column: pass --target or set 'target' in the policy.")
    mv = project.get_model(ref)
    ref = mv.ref
    needs_training = [n for n in pol.checks if n in _NEED_TRAINING_DATA]
    if needs_training and train_data is None and not mv.datasets:
        raise DataError(
            f"The {' and '.join(needs_training)} check{'s' if len(needs_training) > 1 else ''} of policy "
            f"'{pol.name}' need{'' if len(needs_training) > 1 else 's'} the model's training dataset, and {ref} was "
            "registered without one. Register the model with its training dataset (bastion model register FILE "
            "--dataset NAME:VERSION), or leave those checks out of the policy. Nothing was run or stored."
        )
    df, data_info = read_frame(project, data)
    if target not in df.columns:
        raise DataError(f"The target column '{target}' is not in the data; columns are {list(df.columns)}.")
    for i, attr in enumerate(pol.sensitive_attributes):
        if attr not in df.columns:
            raise DataError(
                f"{pol.where('sensitive_attributes', i)}: sensitive attribute '{attr}' is not a column of the "
                f"data; columns are {list(df.columns)}."
            )
    df = df[df[target].notna()].reset_index(drop=True)
    model = load_gate_model(project, ref)
    features = _feature_frame(model, df, target)
    lineage_infos: list[dict[str, Any]] = []
    if train_data is None:
        train_data, lineage_infos = _training_frame(project, mv, target)
    else:
        _, info = read_frame(project, train_data)
        lineage_infos = [{**info, "source": "train_data argument"}]
    seen = _seen_in_training(df, list(features.columns), target, train_data)
    if seen is not None and seen.any():
        # Identical rows occur by chance in low-dimensional data (they stay: they are other records), but
        # evaluation data that is mostly training rows inflates every score and, as "non-members", blinds
        # the membership-inference check: refused. The count is recorded either way.
        n_seen = int(seen.sum())
        if n_seen > _MAX_SEEN_SHARE * len(df):
            raise DataError(
                f"{n_seen} of the {len(df)} rows of the evaluation data are rows of the model's training data: "
                "a gate needs held-out data the model has not seen. Nothing was run or stored."
            )
        data_info = {**data_info, "rows_seen_in_training": n_seen}
    task, pos = _task_and_label(model, df[target], pol)
    y_pred, y_score = predict_frame(model, features, pos, task)
    y_true = (
        df[target].to_numpy(dtype=np.float64) if task == "regression" else labels_to_binary(df[target].to_numpy(), pos)
    )
    if train_data is not None:
        for i, attr in enumerate(pol.sensitive_attributes):
            if attr not in train_data.columns and "diversity" in pol.checks:
                raise DataError(
                    f"{pol.where('sensitive_attributes', i)}: sensitive attribute '{attr}' is not a column of the "
                    "training data."
                )
    ctx = CheckContext(
        project=project, ref=ref, model_version=mv, model=model, policy=pol, data=df, target=target,
        features=features, y_true=y_true, y_pred=y_pred, y_score=y_score, task=task, positive_label=pos,
        train_data=train_data, seed=pol.seed,
    )
    results: list[CheckResult] = []
    names = list(pol.checks)
    for i, name in enumerate(names):
        check = get_check(name)
        spec = pol.spec(name)
        try:
            res = check.run(ctx)
        except (ConfigError, DataError):
            raise
        except Exception as e:  # a check that crashes fails (closed), with the error as evidence
            log.exception("check %s crashed", name)
            res = CheckResult(name, {}, {}, False, spec.required, {}, error=f"{type(e).__name__}: {e}")
        results.append(res)
        if progress:
            progress(i + 1, len(names))
    passed = all(r.passed for r in results if r.required)
    result = GateResult(
        ref=ref, model_digest=mv.digest, policy_name=pol.name, policy_version=pol.version,
        policy_digest=pol.digest, passed=passed, checks=tuple(results),
        datasets={"evaluation": {**data_info, "target": target}, "training": lineage_infos}, started_at=started,
        finished_at=_now(),
        actor=project.settings.actor, gate_id=uuid.uuid4().hex, duration_s=time.perf_counter() - t0,
    )
    statement = build_statement(result)
    key = _signing.load_key(project) if sign else None
    bundle = _signing.sign(statement, key) if key is not None else None
    att = {
        "schema_version": 1,
        "type": "gate",
        "gate_id": result.gate_id,
        "statement": statement,
        "statement_digest": statement_digest(statement),
        "bundle": bundle,
        "signer": _signing.signer_of(key) if key is not None else None,
    }
    summary = {"statement_digest": att["statement_digest"], "signed": bundle is not None, "signer": att["signer"]}
    result = GateResult(**{**result.__dict__, "attestation": summary})
    project.attach(ref, "gate", result.to_dict())
    project.attach(ref, "attestation", att)
    project.audited(
        "gate.run", ref,
        {
            "passed": passed, "policy_digest": pol.digest, "gate_id": result.gate_id,
            "statement_digest": att["statement_digest"], "signed": bundle is not None,
            "failed_required": result.failed_required,
        },
    )
    return result
