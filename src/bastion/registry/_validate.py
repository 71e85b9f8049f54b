"""Registration-time validation of a model artifact: it loads as its flavor (restricted, no code execution)
and, given a training dataset, predicts on a few of its rows."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.errors import BastionError, DataError, UnsafeArtifactError
from bastion.flavors import FlavorInfo, ModelAdapter, get_flavor, is_servable
from bastion.flavors._isolate import check_in_child
from bastion.flavors.mitigated import MitigationSpec
from bastion.flavors.probe import PROBE_ROWS, InputField, input_fields, probe
from bastion.flavors.sklearn import save_estimator

if TYPE_CHECKING:
    from bastion.project import Project

SMOKE_ROWS = 5


def policy_target(project: Project) -> str | None:
    """The target column the project's gate policy names, if there is one that reads."""
    try:
        from bastion.gates.policy import find_project_policy, load_policy

        path = find_project_policy(project)
        return load_policy(path).target if path is not None else None
    except BastionError:
        return None


def input_frame(model: Any, frame: Any, target: str | None) -> tuple[Any, list[str]]:
    """The model's inputs from a dataset frame: named features, or the other columns in order (notes why)."""
    notes: list[str] = []
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        missing = [str(n) for n in names if n not in frame.columns]
        if missing:
            raise DataError(f"the dataset lacks the model's input features {missing}")
        return frame[[str(n) for n in names]], notes
    cols = [c for c in frame.columns if c != target]
    n = getattr(model, "n_features_in_", None)
    if n is not None and len(cols) != n:
        if target is None and len(cols) == n + 1:
            cols = cols[:-1]
            notes.append("no target known yet (set 'target' in bastion-policy.yaml): the last column was left out "
                         "for the registration check")
        else:
            raise DataError(f"the model takes {n} inputs but the dataset has {len(cols)} columns besides the "
                            f"target ({target or 'unknown'})")
    plain_array = n is not None and not isinstance(model, ModelAdapter)  # fitted on an array: give it one
    return (frame[cols].to_numpy() if plain_array else frame[cols]), notes


def smoke_predict(model: Any, frame: Any, target: str | None) -> tuple[list[str], list[str] | None]:
    """Predict on the first rows of ``frame``; raise :class:`DataError` saying why it could not.

    Returns notes and, for a model without input names, the columns it was given when they were unambiguous.
    """
    x, notes = input_frame(model, frame.head(SMOKE_ROWS), target)
    columns = None
    if getattr(model, "feature_names_in_", None) is None and not notes and hasattr(x, "columns"):
        columns = [str(c) for c in x.columns]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # feature-name and convergence chatter is not the point here
            pred = np.asarray(model.predict(x))
            if hasattr(model, "predict_proba"):
                proba = np.asarray(model.predict_proba(x))
                if proba.shape[0] != len(x):
                    raise ValueError(f"predict_proba gave {proba.shape[0]} rows for {len(x)}")
    except BastionError:
        raise
    except Exception as e:
        raise DataError(f"it did not predict on {len(x)} rows of its dataset: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300] if str(e) else ''}") from e
    if pred.shape[0] != len(x):
        raise DataError(f"it returned {pred.shape[0]} predictions for {len(x)} rows of its dataset")
    return notes, columns


def validate_artifact(
    project: Project,
    path: Path,
    flavor: str,
    *,
    dataset_refs: list[str],
    trusted: list[str] | None,
    convert: str | None,
    scan_status: str,
    workdir: Path,
    feature_names: list[str] | None = None,
    allowed_globals: tuple[str, ...] = (),
) -> tuple[FlavorInfo, Path | None]:
    """Load ``path`` as ``flavor`` and predict on the dataset (without one: on a probe batch generated from its
    input signature); returns the flavor document and, when converted, the skops file to store instead. Raises a
    BastionError saying why the registration is refused."""
    fl = get_flavor(flavor)
    if feature_names is not None and dataset_refs:
        raise DataError("--feature-names names the inputs of a model registered without a dataset; with --dataset "
                        "the dataset's columns name them. Give one or the other.")
    if convert is not None and convert != "skops":
        raise DataError(f"Models can be converted to 'skops' only; got --convert {convert!r}.")
    if convert and flavor not in ("pickle", "joblib"):
        raise DataError(f"--convert skops converts pickle or joblib files; {path.name} is flavor '{flavor}'.")
    if not is_servable(flavor) or path.is_dir():
        if feature_names is not None:
            raise DataError(f"--feature-names applies to models Bastion serves; {path.name} is stored as an opaque "
                            f"'{flavor}' artifact.")
        return FlavorInfo(flavor=flavor, framework=fl.framework(), notes=(
            "stored as an opaque artifact: scanned, signed and versioned, never gated or served",)), None
    what = f"{path.name} (flavor {flavor})"
    if flavor in ("pickle", "joblib") and scan_status not in ("clean", "unscanned", "allowed"):
        raise UnsafeArtifactError(f"{what} is not loaded: its scan is '{scan_status}'.")
    if flavor in ("pickle", "joblib") and allowed_globals:
        # the globals of the findings the operator allows now (audited with this registration), nothing more
        trusted = sorted({*(trusted or []), *allowed_globals})
    try:
        data = path.read_bytes()
        precheck = getattr(fl, "precheck", None)
        if precheck is not None:  # the flavor's own checks first: they name what is wrong
            precheck(data, what=what)
        check_in_child(flavor, data, what=what)  # a native parser that crashes on the file: refused, not fatal
        model = fl.load(data, what=what, trusted=trusted)
    except BastionError as e:
        raise type(e)(f"Refusing to register {path.name}: {e}") from e
    if isinstance(model, MitigationSpec):
        from bastion.registry._models import resolve_mitigation

        model = resolve_mitigation(project, model, what=f"Refusing to register {path.name}")
    notes: list[str] = []
    columns: list[str] | None = None
    converted: Path | None = None
    if convert == "skops":
        out_dir = workdir / "converted"
        out_dir.mkdir(mode=0o700)
        converted, _framework, _ = save_estimator(model, out_dir)
        fl = get_flavor("skops")
        notes.append(f"converted from {flavor} to skops on registration")
    if dataset_refs:
        dv = project.get_dataset(dataset_refs[0])
        frame = project.read_dataset(dv.ref)
        try:
            more, columns = smoke_predict(model, frame, policy_target(project))
            notes += more
        except DataError as e:
            raise DataError(f"Refusing to register {path.name} with dataset {dv.ref}: {e}.") from e
        notes.append(f"predicted on {min(SMOKE_ROWS, len(frame))} rows of {dv.ref} at registration")
    fields: tuple[InputField, ...] | None = None
    if not dataset_refs and (isinstance(model, ModelAdapter) or feature_names is not None):
        try:
            fields = input_fields(model, feature_names)
            probe(model, fields)
        except DataError as e:
            raise DataError(f"Refusing to register {path.name} without a dataset: {e}. Register it with its "
                            "training dataset (--dataset NAME:VERSION) instead, or fix the model.") from e
        if feature_names is not None:
            columns = [f.name for f in fields]
        notes.append(f"no dataset: inputs from its signature ({len(fields)} fields); ran on a generated batch of "
                     f"{PROBE_ROWS} rows at registration")
    info = fl.info(model)
    return FlavorInfo(flavor=info.flavor, framework=info.framework, requirements=info.requirements,
                      signature=info.signature, task=info.task, classes=info.classes,
                      notes=info.notes + tuple(notes),
                      input_columns=tuple(columns) if columns and isinstance(model, ModelAdapter) else None,
                      inputs=tuple(f.to_dict() for f in fields) if fields is not None else None), converted
