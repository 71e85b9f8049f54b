"""A model registered without a training dataset: its inputs come from its own signature (the ONNX graph, the
feature names an XGBoost/LightGBM file carries, or --feature-names), it must run on a generated probe batch, and
the server validates requests against that signature (types, count, element ranges) and predicts."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.errors import DataError
from bastion.flavors.probe import InputField, input_fields, read_feature_names
from tests.flavors import builders as b

with warnings.catch_warnings():
    # Starlette's TestClient warns (once, at import) that it uses httpx rather than httpx2: test plumbing only.
    warnings.simplefilter("ignore")
    import starlette.testclient  # noqa: F401

PASSPHRASE = "signature-tests-not-secret"
POLICY = (
    "version: 1\nname: perf\ntarget: label\npositive_label: 1\n"
    "checks:\n  performance:\n    thresholds: {accuracy: 0.7}\n"
    "aliases:\n  staging:\n    requires: [gate, scan, signature]\n"
)


def _free_width_onnx(df: Any, dest: Path) -> Path:
    """An ONNX logistic regression whose input is [batch, ?]: the graph does not fix the number of features."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x = df[b.FEATURES].to_numpy(dtype=np.float32)
    clf = LogisticRegression(max_iter=300).fit(x, df[b.TARGET])
    onx = to_onnx(clf, initial_types=[("x", FloatTensorType([None, None]))], target_opset=17,
                  options={id(clf): {"zipmap": False}})
    path = dest / "free-width.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


# ------------------------------------------------------------------------------ inputs from the signature


def test_onnx_single_tensor_gives_positional_or_named_fields(artifacts: dict[str, Any]) -> None:
    from bastion.flavors import get_flavor

    model = get_flavor("onnx").load(artifacts["onnx"].read_bytes(), what="m")
    assert input_fields(model) == tuple(InputField(f"f{i}", "float") for i in range(4))
    assert [f.name for f in input_fields(model, b.FEATURES)] == b.FEATURES
    with pytest.raises(DataError, match="takes 4 input features but --feature-names gives 3"):
        input_fields(model, b.FEATURES[:3])


@pytest.mark.parametrize(("key", "elem"), [("xgboost", "float"), ("lightgbm", "double")])
def test_boosters_use_the_feature_names_their_file_carries(artifacts: dict[str, Any], key: str, elem: str) -> None:
    from bastion.flavors import get_flavor

    model = get_flavor(key).load(artifacts[key].read_bytes(), what="m")
    assert input_fields(model) == tuple(InputField(n, elem) for n in b.FEATURES)
    assert input_fields(model, b.FEATURES) == input_fields(model)
    with pytest.raises(DataError, match="names its features"):
        input_fields(model, list(reversed(b.FEATURES)))  # the operator cannot silently reorder a named model


@pytest.mark.parametrize(("names", "why"), [
    ([], "empty"), (["a", "a"], "repeats"), (["a", " b"], "not allowed"), (["a\nb"], "not allowed"),
    (["x" * 201], "not allowed"), ([""], "not allowed"),
])
def test_bad_feature_names_are_refused(names: list[str], why: str) -> None:
    with pytest.raises(DataError, match=why):
        read_feature_names(names)


def test_register_without_dataset_records_signature_inputs(project: Any, artifacts: dict[str, Any]) -> None:
    mv = project.log_model(artifacts["onnx"], name="m")
    doc = project.attachments(mv.ref, "flavor")[-1]
    assert doc["inputs"] == [{"name": f"f{i}", "type": "float"} for i in range(4)]
    assert doc["input_columns"] is None  # positional: the gate takes the data's columns in order
    assert any("generated batch of 5 rows" in n for n in doc["notes"])
    named = project.log_model(artifacts["onnx"], name="m", feature_names=b.FEATURES)
    doc = project.attachments(named.ref, "flavor")[-1]
    assert [f["name"] for f in doc["inputs"]] == b.FEATURES and doc["input_columns"] == b.FEATURES
    assert list(project.load_model(named.ref).feature_names_in_) == b.FEATURES  # names bound on load


def test_register_without_dataset_refuses_what_it_cannot_probe(project: Any, artifacts: dict[str, Any],
                                                               tmp_path: Path) -> None:
    free = _free_width_onnx(artifacts["frame"], tmp_path)
    with pytest.raises(DataError, match=r"without a dataset: its input 'x' does not fix the number of features"):
        project.log_model(free, name="m")
    # named, it runs on the probe (the operator's names fix the width the server enforces)
    mv = project.log_model(free, name="m", feature_names=b.FEATURES)
    assert [f["name"] for f in project.attachments(mv.ref, "flavor")[-1]["inputs"]] == b.FEATURES
    with pytest.raises(DataError, match="--feature-names names the inputs of a model registered without"):
        dv = project.register_dataset(artifacts["frame"], name="credit")
        project.log_model(artifacts["onnx"], name="m", datasets=[dv.ref], feature_names=b.FEATURES)
    assert [v.version for v in project.list_models("m")] == [1]  # nothing else was registered


def test_a_model_that_fails_on_the_probe_batch_is_refused(project: Any, artifacts: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.flavors.onnx import OnnxAdapter

    def broken(self: Any, x: Any) -> Any:
        raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions")

    monkeypatch.setattr(OnnxAdapter, "predict", broken)
    with pytest.raises(DataError, match="did not run on a generated batch of 5 rows matching its input signature"):
        project.log_model(artifacts["onnx"], name="m")
    assert project.list_models() == []


def bastion(*args: str) -> tuple[int, str]:
    """`bastion ARGS…` through the real entry point (error mapping and exit codes included)."""
    import contextlib
    import io

    from bastion.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
    return code, out.getvalue()


def test_cli_feature_names_from_a_file_and_bad_ones(project: Any, artifacts: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "names.json").write_text(json.dumps(b.FEATURES))
    code, out = bastion("model", "register", str(artifacts["onnx"]), "--name", "m", "--feature-names",
                        f"@{tmp_path / 'names.json'}", "--json")
    assert code == 0, out
    code, out = bastion("model", "show", "m:1")
    assert code == 0 and "4 fields from the model's signature (no dataset): age: float, income: float" in \
        " ".join(out.split())
    assert [f["name"] for f in project.attachments("m:1", "flavor")[-1]["inputs"]] == b.FEATURES
    (tmp_path / "bad.json").write_text('["a", 1]')
    for value, msg in ((f"@{tmp_path / 'bad.json'}", "JSON list of strings"), ("a,b", "takes 4 input features"),
                       ("a,,b,c", "not allowed"), (f"@{tmp_path / 'missing.txt'}", "Cannot read")):
        code, out = bastion("model", "register", str(artifacts["onnx"]), "--name", "m", "--feature-names", value)
        assert code == 2, (value, out)
        assert msg in " ".join(out.split()) and "Traceback" not in out


# ------------------------------------------------------------------------- gate, sign, promote, serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """ONNX (positional) and XGBoost (names from its file), both registered WITHOUT a dataset, gated on a
    holdout, signed, promoted to staging and served in-process."""
    from starlette.testclient import TestClient

    from bastion.crypto.signing.keys import init_signing_key, load_signing_key
    from bastion.gates.run import run_gate
    from bastion.gates.signatures import sign_version
    from bastion.project import init_project
    from bastion.serve import ServeConfig, create_api_key, create_app

    root = tmp_path_factory.mktemp("sig-serve")
    hold = b.frame(200, seed=1)  # the session's models were trained on b.frame(500)
    onnx_path, xgb_path = artifacts["onnx"], artifacts["xgboost"]
    proj_root = root / "proj"
    proj_root.mkdir()
    p = init_project(proj_root)
    (proj_root / "bastion-policy.yaml").write_text(POLICY, encoding="utf-8")
    old = os.environ.get("BASTION_KEY_PASSPHRASE")
    os.environ["BASTION_KEY_PASSPHRASE"] = PASSPHRASE
    clients: dict[str, Any] = {}
    try:
        init_signing_key(p, "release", passphrase=PASSPHRASE)
        key = load_signing_key(p, "release", passphrase=PASSPHRASE)
        for name, path in (("sig-onnx", onnx_path), ("sig-xgb", xgb_path)):
            mv = p.log_model(path, name=name)
            assert mv.datasets == []
            assert run_gate(p, mv.ref, proj_root / "bastion-policy.yaml", hold, "label").passed
            sign_version(p, mv.ref, key=key)
            p.promote(mv.ref, alias="staging")
        api_key = create_api_key(p, "t", ["predict"]).key
        with TestClient(create_app(ServeConfig(ref="sig-onnx@staging", project_root=str(proj_root), poll_s=0),
                                   project=p)) as c1:
            clients = {"sig-onnx": c1}
            yield {"clients": clients, "key": api_key, "hold": hold, "onnx": onnx_path, "xgb": xgb_path,
                   "project": p}
    finally:
        if old is None:
            os.environ.pop("BASTION_KEY_PASSPHRASE", None)
        else:
            os.environ["BASTION_KEY_PASSPHRASE"] = old
        p.close()


def _post(served: dict[str, Any], name: str, body: Any, raw: bytes | None = None) -> Any:
    headers = {"Authorization": f"Bearer {served['key']}", "Content-Type": "application/json"}
    return served["clients"][name].post(f"/v1/models/{name}:predict", headers=headers,
                                        content=raw if raw is not None else json.dumps(body).encode())


def test_served_from_signature_predictions_equal_onnxruntime(served: dict[str, Any]) -> None:
    import onnxruntime as ort

    rows = served["hold"].iloc[:40]
    x = rows[b.FEATURES].to_numpy(dtype=np.float32)
    arrays = [[float(v) for v in r] for r in x.tolist()]
    r = _post(served, "sig-onnx", {"instances": arrays})
    assert r.status_code == 200, r.text
    sess = ort.InferenceSession(served["onnx"].read_bytes(), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {sess.get_inputs()[0].name: x})
    assert r.json()["predictions"] == [int(v) for v in label]
    np.testing.assert_allclose(r.json()["probabilities"], np.asarray(proba)[:, 1], atol=1e-6)
    assert 0 < sum(r.json()["predictions"]) < len(rows)  # both classes: the comparison is not vacuous
    named = [{f"f{i}": v for i, v in enumerate(row)} for row in arrays]  # positional names f0..f3
    assert _post(served, "sig-onnx", {"instances": named}).json()["predictions"] == r.json()["predictions"]


def test_served_xgboost_uses_its_own_feature_names(served: dict[str, Any]) -> None:
    """The server's load path (trust checks, validator from the signature, predict) without an HTTP app."""
    import xgboost

    from bastion.serve import load_trusted
    from bastion.serve.validation import InvalidInput

    m = load_trusted(served["project"], "sig-xgb@staging")
    assert m.schema.features == tuple(b.FEATURES) and m.dataset_ref == ""
    rows = served["hold"].iloc[:40]
    body = {"instances": [{f: float(x[f]) for f in b.FEATURES} for _, x in rows.iterrows()]}
    out = m.predict(m.matrix(m.schema.parse(json.dumps(body).encode())))
    booster = xgboost.Booster()
    booster.load_model(str(served["xgb"]))
    p = booster.predict(xgboost.DMatrix(rows[b.FEATURES]))
    np.testing.assert_allclose(out["probabilities"], p, atol=1e-6)
    assert out["predictions"] == [int(v > 0.5) for v in p]
    for bad in ({"instances": [{**body["instances"][0], "f0": 1.0}]}, {"instances": [{"age": 1.0}]}):
        with pytest.raises(InvalidInput) as e:
            m.schema.parse(json.dumps(bad).encode())
        assert e.value.status == 422


GOOD = {"f0": 40.0, "f1": 50000.0, "f2": 0.1, "f3": -0.3}


@pytest.mark.parametrize(("body", "err_type"), [
    ({"instances": [{**GOOD, "f0": "40"}]}, "float_type"),                 # a string for a float tensor
    ({"instances": [{**GOOD, "f0": True}]}, "float_type"),                 # a boolean is not a number
    ({"instances": [{**GOOD, "f0": None}]}, "float_type"),                 # no nulls: the tensor has no missing
    ({"instances": [{**GOOD, "f0": 1e39}]}, "less_than_equal"),            # would be inf as float32
    ({"instances": [{k: v for k, v in GOOD.items() if k != "f3"}]}, "missing"),
    ({"instances": [{**GOOD, "f4": 1.0}]}, "extra_forbidden"),
    ({"instances": [{**GOOD, "age": 1.0}]}, "extra_forbidden"),
    ({"instances": [[1.0, 2.0, 3.0]]}, "missing"),                          # too few values in an array row
    ({"instances": [[1.0, 2.0, 3.0, 4.0, 5.0]]}, "too_long"),               # too many
    ({"instances": [[[1.0, 2.0, 3.0, 4.0]]]}, None),                        # a 3-D body
    ({"instances": []}, "too_short"),
    ({"inputs": [[1.0, 2.0, 3.0, 4.0]]}, None),
])
def test_bodies_that_do_not_fit_the_signature_are_422(served: dict[str, Any], body: Any,
                                                     err_type: str | None) -> None:
    r = _post(served, "sig-onnx", body)
    assert r.status_code == 422, r.text
    if err_type is not None:
        assert err_type in {e["type"] for e in r.json()["errors"]}, r.json()


def test_costly_bodies_are_bounded(served: dict[str, Any]) -> None:
    row = json.dumps([1.0, 2.0, 3.0, 4.0])
    r = _post(served, "sig-onnx", None, raw=b'{"instances": [' + ",".join([row] * 1001).encode() + b"]}")
    assert r.status_code == 422 and "1000" in json.dumps(r.json())  # more rows than the limit
    wide = b'{"instances": [[' + b",".join([b"1.0"] * 200_000) + b"]]}"
    assert _post(served, "sig-onnx", None, raw=wide).status_code == 413  # more members than any valid body
    deep = b'{"instances": ' + b"[" * 64 + b"]" * 64 + b"}"
    assert _post(served, "sig-onnx", None, raw=deep).status_code == 400
    assert _post(served, "sig-onnx", {"instances": [GOOD]}).status_code == 200  # and the server still answers


def test_gates_that_need_training_data_say_so(served: dict[str, Any], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    p = served["project"]
    monkeypatch.chdir(p.settings.root)
    policy = tmp_path / "div.yaml"
    policy.write_text("version: 1\nname: div\ntarget: label\nsensitive_attributes: [age]\n"
                      "checks:\n  performance:\n    thresholds: {accuracy: 0.5}\n  diversity: {min_share: 0.01}\n"
                      "  privacy: {max_auc: 0.9}\n", encoding="utf-8")
    hold = tmp_path / "hold.parquet"
    served["hold"].to_parquet(hold)
    before = len(p.attachments("sig-onnx:1", "gate"))
    code, out = bastion("gate", "run", "sig-onnx:1", "--policy", str(policy),
                        "--data", str(hold))
    assert code == 2, out
    text = " ".join(out.split())
    assert "diversity and privacy checks of policy 'div' need the model's training dataset" in text
    assert "sig-onnx:1 was registered without one" in text and "Traceback" not in out
    assert len(p.attachments("sig-onnx:1", "gate")) == before  # nothing stored


def _typed_inputs_onnx(dest: Path) -> tuple[Path, Any]:
    """skl2onnx over a DataFrame: one input per column, typed string, int64 and float."""
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"city": rng.choice(["a", "b", "c"], n), "visits": rng.integers(0, 20, n).astype("int64"),
                       "score": rng.normal(size=n).astype("float32")})
    y = ((df["city"] == "a") ^ (df["score"] > 0)).astype(int)
    pipe = Pipeline([("ct", ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                               ("num", StandardScaler(), ["visits", "score"])])),
                     ("lr", LogisticRegression())]).fit(df, y)
    path = dest / "typed.onnx"
    path.write_bytes(to_onnx(pipe, df[:1], options={id(pipe[-1]): {"zipmap": False}},
                             target_opset=17).SerializeToString())
    return path, df


def test_typed_inputs_of_a_multi_input_graph_are_validated_and_fed(project: Any, tmp_path: Path) -> None:
    import onnxruntime as ort

    from bastion.serve.validation import InvalidInput, build_input_schema, signature_specs

    path, df = _typed_inputs_onnx(tmp_path)
    mv = project.log_model(path, name="typed")
    docs = project.attachments(mv.ref, "flavor")
    assert docs[-1]["inputs"] == [{"name": "city", "type": "string"}, {"name": "visits", "type": "int64"},
                                  {"name": "score", "type": "float"}]
    schema = build_input_schema(signature_specs(mv.ref, docs), model_name="typed")
    model = project.load_model(mv.ref)
    rows = df.head(25)
    body = {"instances": [{"city": str(r.city), "visits": int(r.visits), "score": float(r.score)}
                          for r in rows.itertuples()]}
    got = model.predict(schema.to_matrix(schema.parse(json.dumps(body).encode())))  # what the server does
    sess = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    feed = {"city": rows[["city"]].to_numpy(dtype=object).astype(str), "visits": rows[["visits"]].to_numpy(),
            "score": rows[["score"]].to_numpy(dtype=np.float32)}
    assert got.tolist() == [int(v) for v in sess.run(None, feed)[0]]
    good = body["instances"][0]
    for bad, err in (({**good, "visits": 1.5}, "int_type"), ({**good, "visits": "3"}, "int_type"),
                     ({**good, "city": 3}, "string_type"), ({**good, "visits": 2**60}, "less_than_equal"),
                     ({**good, "score": 1e39}, "less_than_equal"), ({"visits": 1, "score": 0.5}, "missing"),
                     ({**good, "city": None}, "string_type")):
        with pytest.raises(InvalidInput) as e:
            schema.parse(json.dumps({"instances": [bad]}).encode())
        assert e.value.status == 422 and err in {x["type"] for x in e.value.errors}, (bad, e.value.errors)


def test_a_version_without_dataset_or_signature_is_not_served(project: Any, artifacts: dict[str, Any]) -> None:
    from bastion.errors import ConfigError
    from bastion.serve.validation import signature_specs

    mv = project.log_model(artifacts["skops"], name="plain")  # scikit-learn, no dataset: nothing to validate by
    with pytest.raises(ConfigError, match="records no training dataset and no input signature"):
        signature_specs(mv.ref, project.attachments(mv.ref, "flavor"))
    with pytest.raises(ConfigError, match="cannot validate"):
        signature_specs("x:1", [{"inputs": [{"name": "a", "type": "complex64"}]}])


def test_gate_on_positional_inputs_refuses_a_wrong_width(served: dict[str, Any]) -> None:
    from bastion.gates.run import run_gate

    p = served["project"]
    hold = served["hold"].assign(extra=1.0)  # five columns besides the target for a four-input graph
    with pytest.raises(DataError, match="takes 4 unnamed inputs in order, but the data has 5 columns"):
        run_gate(p, "sig-onnx:1", p.settings.root / "bastion-policy.yaml", hold, "label")
