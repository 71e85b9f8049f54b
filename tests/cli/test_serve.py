"""`bastion keys api create|list|revoke` and `bastion serve` (refusal paths; the running server is in e2e)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def test_keys_api_create_list_revoke(cli: Callable[..., Any], project_dir: Path) -> None:
    assert cli("init").exit_code == 0
    r = cli("keys", "api", "create", "--name", "billing-app", "--role", "predict")
    assert r.exit_code == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("bst_") and len(key) == 4 + 8 + 1 + 43
    r = cli("keys", "api", "create", "--name", "ops", "--role", "admin", "--role", "explain", "--json")
    made = json.loads(r.stdout)
    assert made["roles"] == ["admin", "explain"] and made["key"].startswith("bst_")
    r = cli("keys", "api", "list", "--json")
    listed = json.loads(r.stdout)
    assert [k["name"] for k in listed] == ["billing-app", "ops"]
    assert all("digest" not in k and "key" not in k for k in listed)
    assert key not in r.stdout
    r = cli("keys", "api", "list")
    assert "billing-app" in r.stdout and key not in r.stdout
    r = cli("keys", "api", "revoke", "billing-app", "--reason", "rotated")
    assert r.exit_code == 0 and "Revoked" in r.stdout
    assert json.loads(cli("keys", "api", "list", "--json").stdout)[0]["status"] == "revoked"


@pytest.mark.parametrize(("args", "code", "msg"), [
    (["keys", "api", "create", "--name", "x", "--role", "root"], 2, "Unknown role"),
    (["keys", "api", "revoke", "nobody"], 2, "No active API key"),
    (["serve", "income:1"], 2, "by alias"),
    (["serve", "income@production"], 2, "income"),
    (["serve", "income@production", "--workers", "0"], 2, "--workers"),
    (["serve", "income@production", "--tls-cert", "c.pem"], 2, "TLS"),
    (["serve", "income@production", "--jwks", "j.json"], 2, "--jwt-issuer"),
])
def test_usage_errors(cli: Callable[..., Any], args: list[str], code: int, msg: str) -> None:
    assert cli("init").exit_code == 0
    r = cli(*args)
    assert r.exit_code == code, (r.stdout, r.stderr)
    assert msg in r.stderr


def test_serve_refuses_an_unsigned_ungated_model_with_exit_1(cli: Callable[..., Any], project_dir: Path) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from bastion.project import open_project

    assert cli("init").exit_code == 0
    p = open_project(project_dir)
    df = pd.DataFrame({"a": np.arange(40.0), "y": np.arange(40) % 2})
    dv = p.register_dataset(df, name="d")
    mv = p.log_model(LogisticRegression().fit(df[["a"]], df["y"]), name="m", datasets=[dv.ref])
    p.promote(mv.ref, alias="production")
    p.close()
    r = cli("serve", "m@production", "--port", "0")
    assert r.exit_code == 1
    assert "Refusing to serve m:1" in r.stderr and "signature:" in r.stderr and "gate:" in r.stderr
    assert "Traceback" not in r.stderr
