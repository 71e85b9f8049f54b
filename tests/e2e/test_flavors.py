"""Bring your own model, through the CLI as a user would: an ONNX pipeline, an XGBoost native JSON model and a
LightGBM text model on named features, plus a skops control. Each goes through `data register`, `model register
FILE --name N --dataset D:1`, `gate run` (performance policy), `model sign`, `model promote --alias staging` and
`bastion serve`; named-feature requests must get the framework's own predictions; then a monitoring window and a
rollback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.cli_inprocess import run_cli
from tests.flavors import builders as b

PASSPHRASE = "e2e-flavors-not-secret"
FLAVORS = {"onnx": "pipeline", "xgboost": "xgb", "lightgbm": "lgbm", "skops": "control"}
POLICY = (
    "version: 1\nname: perf\ntarget: label\npositive_label: 1\n"
    "checks:\n  performance:\n    thresholds: {accuracy: 0.7}\n"
    "aliases:\n  staging:\n    requires: [gate, scan, signature]\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bastion(*args: str) -> tuple[int, str, str]:
    """`bastion ARGS…` in-process through the real entry point (exit codes and error mapping included)."""
    return run_cli(*args)


def ok(*args: str) -> str:
    code, out, err = bastion(*args)
    assert code == 0, f"bastion {' '.join(args)} -> {code}\n{out}\n{err}"
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("byom")
    old_cwd, old_env = Path.cwd(), {k: os.environ.get(k) for k in ("BASTION_KEY_PASSPHRASE",)}
    os.chdir(root)
    os.environ["BASTION_KEY_PASSPHRASE"] = PASSPHRASE
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        df = b.frame(700)
        train, hold = df.iloc[:500], df.iloc[500:]
        train.to_parquet("train.parquet")
        hold.to_parquet("holdout.parquet")
        art = root / "artifacts"
        art.mkdir()
        made = {
            "onnx": b.onnx_pipeline(train, art)[0], "xgboost": b.xgboost_json(train, art)[0],
            "lightgbm": b.lightgbm_text(train, art)[0], "skops": b.skops_control(train, art)[0],
        }
        (root / "perf.yaml").write_text(POLICY, encoding="utf-8")
        ok("init")
        ok("keys", "signing", "init", "release")
        ok("data", "register", "train.parquet", "--name", "credit")
        key = json.loads(ok("keys", "api", "create", "--name", "e2e", "--role", "predict", "--json"))["key"]
        for flavor, name in FLAVORS.items():
            reg = json.loads(ok("model", "register", str(made[flavor]), "--name", name, "--dataset", "credit:1",
                                "--json"))
            assert reg["flavor"] == flavor and reg["scan_status"] == "clean"
            ok("gate", "run", f"{name}:1", "--policy", "perf.yaml", "--data", "holdout.parquet")
            ok("model", "sign", f"{name}:1")
            ok("model", "promote", f"{name}:1", "--alias", "staging")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_") or k == "BASTION_USER"}
        ports = {}
        for name in FLAVORS.values():
            ports[name] = _free_port()
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "bastion.cli", "serve", f"{name}@staging", "--port", str(ports[name]),
                 "--project", str(root), "--rate", "0", "--poll", "0.5"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + 150
        for name, port in ports.items():
            while True:
                assert procs[name].poll() is None, f"the server for {name} exited"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"the server for {name} did not become ready"
                time.sleep(0.3)
        yield {"root": root, "key": key, "ports": ports, "made": made, "hold": hold, "train": train, "procs": procs}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _post(world: dict[str, Any], name: str, body: Any) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{world['ports'][name]}/v1/models/{name}:predict", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {world['key']}"})


@pytest.mark.slow
@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_served_predictions_equal_the_frameworks_own(world: dict[str, Any], flavor: str) -> None:
    name = FLAVORS[flavor]
    rows = world["hold"].iloc[:40]
    instances = [{f: float(r[f]) for f in b.FEATURES} for _, r in rows.iterrows()]
    r = _post(world, name, {"instances": instances})
    assert r.status_code == 200, r.text
    doc = r.json()
    model: Any = world["made"][flavor]
    if flavor == "onnx":
        model = world["made"][flavor].read_bytes()
    elif flavor == "skops":
        import skops.io as sio

        model = sio.load(world["made"][flavor], trusted=sio.get_untrusted_types(file=world["made"][flavor]))
    labels, proba = b.framework_predictions(flavor, model, rows)
    assert doc["predictions"] == labels
    np.testing.assert_allclose(doc["probabilities"], proba, atol=1e-6)  # the server rounds to 6 places
    assert 0 < sum(labels) < len(labels)  # both classes occur: the comparison is not vacuous

    # arrays in the model's declared input order get the same answers; a wrong width is a 422
    arrays = [[inst[f] for f in b.FEATURES] for inst in instances]
    r = _post(world, name, {"instances": arrays})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == labels
    r = _post(world, name, {"instances": [arrays[0][:3]]})
    assert r.status_code == 422
    # validation still comes from the training dataset: unknown fields and wild values are refused
    assert _post(world, name, {"instances": [{**instances[0], "extra": 1.0}]}).status_code == 422
    assert _post(world, name, {"instances": [{**instances[0], "age": 1e9}]}).status_code == 422


@pytest.mark.slow
@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_roll_back_then_monitor_a_window(world: dict[str, Any], flavor: str) -> None:
    name = FLAVORS[flavor]
    rows = world["train"].iloc[:60]
    r = _post(world, name, {"instances": [{f: float(x[f]) for f in b.FEATURES} for _, x in rows.iterrows()]})
    assert r.status_code == 200

    # a second version through the same gates, promoted, then rolled back: the server follows the alias
    ok("model", "register", str(world["made"][flavor]), "--name", name, "--dataset", "credit:1")
    ok("gate", "run", f"{name}:2", "--policy", "perf.yaml", "--data", "holdout.parquet")
    ok("model", "sign", f"{name}:2")
    ok("model", "promote", f"{name}:2", "--alias", "staging")
    _wait_version(world, name, 2)
    ok("model", "rollback", name, "--alias", "staging")
    assert json.loads(ok("model", "show", f"{name}@staging", "--json"))["version"] == 1
    _wait_version(world, name, 1)

    # stopping the server flushes its prediction log; monitoring reads a window of it
    proc = world["procs"][name]
    proc.send_signal(signal.SIGINT)  # what Ctrl+C does: a graceful shutdown
    assert proc.wait(timeout=60) == 0
    assert list((world["root"] / ".bastion" / "predictions" / name).glob("*.parquet"))
    code, out, err = bastion("monitor", "run", "--model", f"{name}@staging", "--window", "1h", "--once", "--json")
    assert code in (0, 1), err  # 1 = an alert (a window this small may drift); never a usage or internal error
    result = json.loads(out)
    assert result["model"] == f"{name}:1"
    assert set(b.FEATURES) <= {f["column"] for f in result["drift"]["features"]}  # every input was monitored


def _wait_version(world: dict[str, Any], name: str, version: int) -> None:
    body = {"instances": [{f: float(world["hold"].iloc[0][f]) for f in b.FEATURES}]}
    deadline = time.monotonic() + 60
    while True:
        r = _post(world, name, body)
        if r.status_code == 200 and r.json()["version"] == version:
            return
        assert time.monotonic() < deadline, f"{name} still serves {r.json().get('version')}, not {version}"
        time.sleep(0.3)
