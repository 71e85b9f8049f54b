"""Two machines, one deployment: two project folders share one PostgreSQL and one S3 bucket (a real
SeaweedFS server). Register, gate, sign and promote in A; serve in B; keys created and revoked in A are
honoured by B within 2 s; a promotion and a rollback in A are followed by B without restart; traffic served
by B is monitored from A; `audit verify` passes in both folders; switching A's database_url away and back
raises no false tamper alarm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ..conftest import free_port


def _toml(root: Path, db: str, artifacts: str) -> None:
    root.mkdir(parents=True)
    (root / "bastion.toml").write_text(f'[bastion]\ndatabase_url = "{db}"\nartifacts_url = "{artifacts}"\n')


def _until(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Seconds until ``cond()`` holds (fails the test after ``timeout``)."""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f"not within {timeout} s"
        time.sleep(step)
    return time.monotonic() - t0


def _cli(root: Path, *args: str) -> Any:
    from bastion.cli.main import app

    old = os.getcwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)


@pytest.mark.slow
def test_two_folders_one_postgres_one_bucket(tmp_path: Path, pg_url: str, s3_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.project import open_project
    from bastion.serve import create_api_key
    from bastion.serve._sample import build_sample_project
    from bastion.serve.auth import revoke_api_key

    a_root, b_root = tmp_path / "machine-a", tmp_path / "machine-b"
    _toml(a_root, pg_url, s3_url)
    _toml(b_root, pg_url, s3_url)
    # A: register, scan, gate, sign and promote (v1 takes production; v2 is ready)
    sample = build_sample_project(a_root, versions=2, rows=600, n_features=6, categorical=False,
                                  protect_email=False)
    a = open_project(a_root)
    k1 = create_api_key(a, "client-one", ["predict"]).key

    # B: a folder of its own (own .bastion/, no private keys) that serves from the shared stores; the policy
    # file is configuration kept with the code, so both machines have it (the same checkout)
    assert _cli(b_root, "init").exit_code == 0
    (b_root / "bastion-policy.yaml").write_text((a_root / "bastion-policy.yaml").read_text())
    assert _cli(b_root, "doctor").exit_code == 0, _cli(b_root, "doctor").output
    assert not (b_root / ".bastion" / "keys").exists()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "serve", "sample@production", "--port", str(port), "--project",
         str(b_root), "--rate", "0", "--poll", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v1/models/sample:predict"
    row = {f: float(v) for f, v in sample.frame[list(sample.features)].iloc[0].items()}
    client = httpx.Client(timeout=10)

    def predict(key: str) -> httpx.Response:
        return client.post(url, json={"instances": [row]}, headers={"Authorization": f"Bearer {key}"})

    def ready() -> bool:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
        try:
            return client.get(f"{base}/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _until(ready, 120, 0.2)
        # a key created in A works in B
        r = predict(k1)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 1

        # a key revoked in A is refused by B within 2 s; a key created in A works in B within 2 s
        revoke_api_key(a, "client-one", reason="rotated")
        took = _until(lambda: predict(k1).status_code == 401, 2.0)
        k2 = create_api_key(a, "client-two", ["predict"]).key
        took2 = _until(lambda: predict(k2).status_code == 200, 2.0)
        print(f"revocation seen by B after {took:.2f} s, new key after {took2:.2f} s")

        # a promotion and a rollback in A are followed by B, without restart
        a.promote("sample:2", alias="production")
        _until(lambda: predict(k2).json().get("version") == 2, 10)
        a.rollback("sample", alias="production", reason="e2e")
        _until(lambda: predict(k2).json().get("version") == 1, 10)
        answers = [predict(k2) for _ in range(40)]
        assert all(r.status_code == 200 for r in answers)
        request_ids = [r.headers["x-request-id"] for r in answers]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # graceful: the prediction log rolls and ships to S3
            proc.wait(timeout=60)
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        client.close()
    assert proc.returncode == 0, out[-3000:]
    assert k1 not in out and k2 not in out

    # B's prediction log is in the bucket, partitioned by model and day, and nothing is left on B's disk
    bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
    from ..conftest import SeaweedS3  # noqa: F401  (type of the session fixture)

    keys = [o["Key"] for o in _s3_list(bucket, f"{prefix}/predictions/sample/")]
    assert keys and all("/day=" in k and k.endswith(".parquet") for k in keys), out[-3000:]
    assert not list((b_root / ".bastion" / "predictions").glob("*/part-*.parquet"))

    # traffic served by B is monitored from A
    from bastion.monitor.runner import run_window

    with warnings.catch_warnings():  # the sample model was fitted on arrays; the monitor hands it a frame
        warnings.filterwarnings("ignore", message="X has feature names", category=UserWarning)
        res = run_window(a, "sample:1", dispatch=False, store=False)
    assert res.drift.n_current >= 40
    assert res.to_dict()["model"].startswith("sample")

    # delayed labels added in A are seen from B (shared object store)
    import pandas as pd

    from bastion.monitor.performance import add_labels, read_labels

    add_labels(a, "sample", pd.DataFrame({"request_id": request_ids, "label": [1] * len(request_ids)}))
    assert not list((a_root / ".bastion" / "labels").glob("*/labels-*.parquet"))  # shipped, not kept
    b = open_project(b_root)
    assert set(read_labels(b, "sample")["request_id"]) == set(request_ids)
    b.close()

    # audit verify passes on both machines
    for root in (a_root, b_root):
        r = _cli(root, "audit", "verify")
        assert r.exit_code == 0, r.output
    a.close()

    # switching database_url away (a fresh database) and back gives no false tamper alarm
    toml = (a_root / "bastion.toml").read_text()
    (a_root / "bastion.toml").write_text(toml.replace(pg_url, f"sqlite:///{tmp_path / 'other.db'}"))
    assert _cli(a_root, "model", "list").exit_code == 0
    (a_root / "bastion.toml").write_text(toml)
    r = _cli(a_root, "audit", "verify")
    assert r.exit_code == 0, r.output


def _s3_list(bucket: str, prefix: str) -> list[dict[str, Any]]:
    import botocore.session

    c = botocore.session.get_session().create_client(
        "s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    got = c.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return list(got.get("Contents", []))


def test_doc_example_is_valid_json() -> None:
    # the storage_options example of docs/operations.md parses as BASTION_STORAGE_OPTIONS
    from bastion.config import load_settings

    s = load_settings(Path("/nonexistent-root"), env={"BASTION_STORAGE_OPTIONS": json.dumps(
        {"endpoint_url": "https://s3.internal.example", "region": "eu-west-1"})})
    assert s.storage_options["region"] == "eu-west-1"


def test_two_folders_share_data_keys_alerts_and_cas(tmp_path: Path, pg_url: str, s3_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """On one PostgreSQL + one SeaweedFS bucket: data protected in A is revealed in B with the same
    key-encryption key (each machine holds its own copy: here BASTION_MASTER_KEY), a wrong one is a clear error
    and an edited key row is refused; alerts raised in B are listed from A; a CA trusted in A (audited) verifies
    signatures in B, a CA row inserted behind the audit chain's back does not."""
    import base64

    from sqlalchemy import update

    from bastion.crypto.aead import CellCipher
    from bastion.crypto.keys import EnvKeyProvider, project_data_keyring
    from bastion.crypto.signing import SigningKey, TrustStore, sign_model, verify_model
    from bastion.crypto.signing.cas import add_trusted_ca, ca_fingerprint, list_trusted_cas
    from bastion.errors import KeyManagementError, VerificationError
    from bastion.monitor.alerts import Alert, deliver
    from bastion.monitor.config import AlertsConfig
    from bastion.project import init_project
    from bastion.store.schema import data_keys, trusted_cas

    from ..crypto.signing.conftest import CA, pem_cert

    a_root, b_root = tmp_path / "machine-a", tmp_path / "machine-b"
    _toml(a_root, pg_url, s3_url)
    _toml(b_root, pg_url, s3_url)
    a, b = init_project(a_root), init_project(b_root)  # keeps the bastion.toml written above
    kek = {"BASTION_MASTER_KEY": base64.b64encode(b"K" * 32).decode()}

    # data keys: made and used in A, unwrapped in B; only wrapped material in the shared database
    key_a = project_data_keyring(a, EnvKeyProvider(environ=kek)).get_or_create("encrypt", "patients")
    secret = CellCipher(key_a.material, key_id=key_a.key_id).encrypt(b"jane.doe@example.com", column="email")
    key_b = project_data_keyring(b, EnvKeyProvider(environ=kek)).get(key_a.key_id)
    assert CellCipher(key_b.material, key_id=key_b.key_id).decrypt(secret, column="email") == b"jane.doe@example.com"
    wrong = {"BASTION_MASTER_KEY": base64.b64encode(b"W" * 32).decode()}
    with pytest.raises(KeyManagementError, match="is wrapped by master key"):
        project_data_keyring(b, EnvKeyProvider(environ=wrong)).get(key_a.key_id)
    with a.db.write() as conn:
        conn.execute(update(data_keys).where(data_keys.c.key_id == key_a.key_id).values(scope="other"))
    with pytest.raises(KeyManagementError, match="altered"):
        project_data_keyring(b, EnvKeyProvider(environ=kek)).get(key_a.key_id)

    # alerts raised on B are listed from A (`bastion monitor alerts`)
    raised = Alert("data-drift", "data_drift", "warning", "sample:1", "drift seen on machine B")
    deliver([raised], AlertsConfig(), db=b.db)
    r = _cli(a_root, "monitor", "alerts", "--json")
    assert r.exit_code == 0, r.output
    assert [x["id"] for x in json.loads(r.stdout)] == [raised.id]

    # a CA trusted in A verifies certificate signatures in B; a row slipped into the table does not
    ca, rogue = CA("Team Root"), CA("Rogue Root")
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 64)
    add_trusted_ca(a, pem_cert(ca.cert), reason="e2e")
    assert verify_model(model, sign_model(model, SigningKey("c", key, (ca.issue(key),))),
                        TrustStore.from_project(b)).signer.kind == "certificate"
    with b.db.write() as conn:
        conn.execute(trusted_cas.insert().values(fingerprint=ca_fingerprint(rogue.cert), subject="CN=Rogue Root",
                                                 pem=pem_cert(rogue.cert).decode(), added_at="x", added_by="x"))
    with pytest.raises(VerificationError):
        verify_model(model, sign_model(model, SigningKey("r", key, (rogue.issue(key),))), TrustStore.from_project(a))
    assert {c.subject: c.trusted for c in list_trusted_cas(a)} == {"CN=Team Root": True, "CN=Rogue Root": False}
    a.close()
    b.close()
