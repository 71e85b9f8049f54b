"""`gate mitigate` on ONNX, XGBoost and LightGBM models: fairlearn's ThresholdOptimizer over the flavor's predict
adapter (prefit); the mitigated version is stored as a reference to the base version's artifact plus the
thresholds (never a re-serialised framework model, never a pickle), and it registers, gates, serves and points
its lineage at the base."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bastion.errors import ConfigError, DataError, UnsafeArtifactError
from tests.flavors import builders as b

FEATURES = [*b.FEATURES, "sex"]
BUILD = {"onnx": b.onnx_pipeline, "xgboost": b.xgboost_json, "lightgbm": b.lightgbm_text}
PASSPHRASE = "mitigate-tests-not-secret"
POLICY = (
    "version: 1\nname: fair\ntarget: label\npositive_label: 1\nsensitive_attributes: [sex]\n"
    "checks:\n  performance:\n    thresholds: {accuracy: 0.6}\n"
    "  fairness:\n    thresholds: {demographic_parity_difference: 0.05}\n"
    "aliases:\n  staging:\n    requires: [gate, scan, signature]\n"
)


def biased(rows: int, seed: int) -> pd.DataFrame:
    """The builders' frame with a strong push towards the positive label for ``sex == 1``: a disparity to fix."""
    df = b.frame(rows, seed, sex=True)
    rng = np.random.default_rng(seed + 100)
    df.loc[(df["sex"] == 1) & (rng.random(rows) < 0.35), "label"] = 1
    return df


def _parity_gap(pred: np.ndarray, sex: pd.Series) -> float:
    rates = [float(np.mean(np.asarray(pred)[sex.to_numpy() == g] == 1)) for g in (0, 1)]
    return abs(rates[0] - rates[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from bastion.gates.mitigate import mitigate
    from bastion.project import init_project

    root = tmp_path_factory.mktemp("mitigate-flavors")
    train, val, hold = biased(600, 0), biased(1000, 5), biased(2000, 3)
    p = init_project(root / "proj")
    (root / "proj" / "bastion-policy.yaml").write_text(POLICY, encoding="utf-8")
    dv = p.register_dataset(train, name="credit")
    vv = p.register_dataset(val, name="credit-validation")  # thresholds are fitted on data the model did not see
    out: dict[str, Any] = {"project": p, "hold": hold, "train": train, "root": root / "proj", "base": {},
                           "mitigated": {}}
    for kind, build in BUILD.items():
        path, _ = build(train, root, features=FEATURES)
        base = p.log_model(path, name=f"{kind}-credit", datasets=[dv.ref])
        out["base"][kind] = base
        out["mitigated"][kind] = mitigate(p, base.ref, method="threshold", data=vv.ref, target="label",
                                          sensitive=["sex"])
    try:
        yield out
    finally:
        p.close()


@pytest.mark.parametrize("kind", list(BUILD))
def test_disparity_drops_and_the_version_refers_to_its_base(world: dict[str, Any], kind: str) -> None:
    p, hold = world["project"], world["hold"]
    base, new = world["base"][kind], world["mitigated"][kind]
    assert new.flavor == "mitigated" and new.parent == base.ref and new.tags["mitigated_from"] == base.ref
    assert new.scan_status == "clean"
    # stored as a small JSON document naming the base's artifact by digest: no model bytes, no pickle
    doc = json.loads(p.model_path(new.ref).read_bytes())
    assert doc["base"] == {"ref": base.ref, "digest": base.digest, "flavor": kind}
    assert new.size < 4096  # thresholds and a reference, not a model
    assert new.digest != base.digest
    lineage = json.dumps(p.lineage(new.ref))
    assert base.ref in lineage
    fl = p.attachments(new.ref, "flavor")[-1]
    assert fl["flavor"] == "mitigated" and f"threshold mitigation over {kind if kind != 'onnx' else 'onnxruntime'}" \
        in fl["framework"]

    base_model, mitigated = p.load_model(base.ref), p.load_model(new.ref)
    assert type(mitigated).__name__ == "MitigatedClassifier" and mitigated.base_ref_ == base.ref
    before = _parity_gap(base_model.predict(hold[FEATURES]), hold["sex"])
    after = _parity_gap(mitigated.predict(hold[FEATURES]), hold["sex"])
    assert before > 0.1 and after < before / 3, (before, after)
    first = mitigated.predict(hold[FEATURES].head(60))
    assert (first == p.load_model(new.ref).predict(hold[FEATURES].head(60))).all()  # repeatable


@pytest.mark.parametrize("kind", list(BUILD))
def test_mitigated_version_gates_signs_promotes_and_serves(world: dict[str, Any], kind: str) -> None:
    from bastion.crypto.signing.keys import init_signing_key, load_signing_key
    from bastion.gates.run import run_gate
    from bastion.gates.signatures import sign_version
    from bastion.serve import load_trusted

    p, hold, new = world["project"], world["hold"], world["mitigated"][kind]
    old = os.environ.get("BASTION_KEY_PASSPHRASE")
    os.environ["BASTION_KEY_PASSPHRASE"] = PASSPHRASE
    try:
        try:
            key = load_signing_key(p, "release", passphrase=PASSPHRASE)
        except Exception:
            init_signing_key(p, "release", passphrase=PASSPHRASE)
            key = load_signing_key(p, "release", passphrase=PASSPHRASE)
        result = run_gate(p, new.ref, world["root"] / "bastion-policy.yaml", hold, "label")
        sign_version(p, new.ref, key=key)
    finally:
        if old is None:
            os.environ.pop("BASTION_KEY_PASSPHRASE", None)
        else:
            os.environ["BASTION_KEY_PASSPHRASE"] = old
    fair = {c.name: c for c in result.checks}["fairness"]
    assert fair.passed  # the base's gap on this holdout is above the 0.05 threshold (the test above)
    assert result.passed, result.failed_required
    p.promote(new.ref, alias="staging")
    served = load_trusted(p, f"{new.name}@staging")
    assert served.ref == new.ref and set(FEATURES) <= set(served.schema.features)
    rows = world["train"].head(30)  # inside the training ranges the server validates against
    body = {"instances": [{f: (int(r[f]) if f == "sex" else float(r[f])) for f in FEATURES}
                          for _, r in rows.iterrows()]}
    out = served.predict(served.matrix(served.schema.parse(json.dumps(body).encode())))
    assert out["predictions"] == [int(v) for v in p.load_model(new.ref).predict(rows[FEATURES])]


def test_a_base_that_changed_or_went_away_is_refused(world: dict[str, Any]) -> None:
    from sqlalchemy import update

    from bastion.registry import _models
    from bastion.store.schema import models

    p, base, new = world["project"], world["base"]["lightgbm"], world["mitigated"]["lightgbm"]
    _models._LOAD_CACHE.clear()
    with p.transaction() as tx:  # the registry's row for the base now names other bytes
        tx.execute(update(models).where(models.c.name == base.name, models.c.version == base.version)
                   .values(digest=world["base"]["xgboost"].digest))
    try:
        with pytest.raises(UnsafeArtifactError, match="now records"):
            p.load_model(new.ref)
    finally:
        with p.transaction() as tx:
            tx.execute(update(models).where(models.c.name == base.name, models.c.version == base.version)
                       .values(digest=base.digest))
        _models._LOAD_CACHE.clear()
    assert type(p.load_model(new.ref)).__name__ == "MitigatedClassifier"


@pytest.mark.parametrize(("edit", "error", "match"), [
    (lambda d: d["base"].update(digest="sha256:" + "0" * 64), UnsafeArtifactError, "now records"),
    (lambda d: d["base"].update(ref="nobody:1"), UnsafeArtifactError, "cannot be used"),
    (lambda d: d["base"].update(flavor="pickle"), DataError, "base.flavor"),
    (lambda d: d["params"][0].__setitem__(0, 1.5), DataError, "probability outside"),
    (lambda d: d["params"][0].__setitem__(1, "x"), DataError, "finite numbers"),
    (lambda d: d.update(method="expgrad"), DataError, "method"),
    (lambda d: d.update(sensitive=["nope"]), DataError, "among 'feature_names'"),
    (lambda d: d.update(schema_version=2), DataError, "schema_version"),
])
def test_a_forged_or_broken_document_is_refused_on_register(world: dict[str, Any], tmp_path: Path, edit: Any,
                                                            error: type[Exception], match: str) -> None:
    p, new = world["project"], world["mitigated"]["onnx"]
    doc = json.loads(p.model_path(new.ref).read_bytes())
    edit(doc)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    count = len(p.list_models())
    with pytest.raises(error, match=match):
        p.log_model(path, name="forged", datasets=new.datasets)
    assert len(p.list_models()) == count


def test_expgrad_on_a_flavor_model_says_to_use_threshold(world: dict[str, Any]) -> None:
    from bastion.gates.mitigate import mitigate

    p = world["project"]
    with pytest.raises(ConfigError, match="with --method threshold"):
        mitigate(p, world["base"]["xgboost"].ref, method="expgrad", data="credit:1", target="label",
                 sensitive=["sex"])


def test_cli_mitigates_a_flavor_model(world: dict[str, Any]) -> None:
    import contextlib
    import io

    from bastion.cli.main import main

    p, base = world["project"], world["base"]["onnx"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(["gate", "mitigate", base.ref, "--data", "credit-validation:1", "--target", "label", "--sensitive",
                  "sex", "--json", "--project", str(world["root"])])
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
    assert code == 0, out.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["flavor"] == "mitigated" and doc["parent"] == base.ref
    assert type(p.load_model(doc["ref"] if "ref" in doc else f"{doc['name']}:{doc['version']}")).__name__ == \
        "MitigatedClassifier"


def test_the_base_of_a_live_mitigated_version_cannot_be_deleted(world: dict[str, Any], tmp_path: Path) -> None:
    from bastion.errors import RegistryError

    p, base, new = world["project"], world["base"]["xgboost"], world["mitigated"]["xgboost"]
    with pytest.raises(RegistryError, match=f"mitigated version\\(s\\) {new.ref}"):
        p.delete_model(base.ref, reason="cleanup")
    assert not p.get_model(base.ref).deleted
    # a mitigated document registered by hand gets the base as its parent, and no other
    path = tmp_path / "again.json"
    path.write_bytes(p.model_path(new.ref).read_bytes())
    with pytest.raises(RegistryError, match="its parent cannot be"):
        p.log_model(path, name="again", datasets=new.datasets, parent=world["base"]["onnx"].ref)
    again = p.log_model(path, name="again", datasets=new.datasets)
    assert again.parent == base.ref
    p.delete_model(again.ref, reason="test")
