"""Load-time trust: tampered artifacts and signatures, missing scans and gates are refused at start and on
hot reload (the old version keeps serving, and the refusal is audited); a trusted move switches."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .helpers import bearer, good_row, make_config


def _blob_path(project: Any, digest: str) -> Any:
    return project.blobs.path_of(digest)


def _tamper_artifact(project: Any, ref: str) -> None:
    mv = project.get_model(ref)
    path = _blob_path(project, mv.digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _forge_signature(project: Any, ref: str) -> None:
    """An attacker re-signs the version with their own key (not in the project's keyring)."""
    from bastion.crypto.signing.keys import SigningKey, generate_private_key
    from bastion.gates.signatures import sign_version

    sign_version(project, ref, key=SigningKey("release", generate_private_key("P-256")))


def test_trusted_version_loads_with_every_check(project: Any, sample: Any) -> None:
    from bastion.serve import load_trusted

    m = load_trusted(project, "sample@production")
    assert m.ref == sample.refs[0]
    assert set(m.trust.checks) == {"digest", "signature", "scan", "gate", "alias"} and m.trust.ok
    assert m.schema.features == sample.features
    assert "email" not in m.schema.features  # the protected column was never an input


@pytest.mark.parametrize("attack", ["artifact", "signature", "revoked_key", "no_gate", "failed_gate", "edited_policy",
                                    "unscanned", "not_alias"])
def test_untrusted_version_is_refused_at_start(project: Any, sample: Any, attack: str) -> None:
    from bastion.errors import BastionError, ConfigError, VerificationError
    from bastion.serve import load_trusted

    ref = sample.refs[0]
    expect = {"artifact": "digest", "signature": "signature", "revoked_key": "signature", "no_gate": "gate",
              "failed_gate": "gate", "edited_policy": "gate", "unscanned": "scan", "not_alias": "alias"}[attack]
    if attack == "artifact":
        _tamper_artifact(project, ref)
    elif attack == "signature":
        _forge_signature(project, ref)
    elif attack == "revoked_key":
        from bastion.crypto.signing.keys import revoke_signing_key

        revoke_signing_key(project, "release", reason="compromised")
    elif attack in ("no_gate", "failed_gate"):
        from sqlalchemy import delete

        from bastion.store.schema import attachments

        with project.transaction() as tx:
            tx.execute(delete(attachments).where(attachments.c.doc_kind == "attestation"))
        if attack == "failed_gate":
            from bastion.gates.run import run_gate

            strict = (sample.root / "bastion-policy.yaml").read_text().replace("accuracy: 0.6", "accuracy: 0.99")
            (sample.root / "bastion-policy.yaml").write_text(strict)
            import os

            from bastion.serve._sample import SAMPLE_PASSPHRASE

            os.environ["BASTION_KEY_PASSPHRASE"] = SAMPLE_PASSPHRASE
            try:
                assert not run_gate(project, ref, sample.root / "bastion-policy.yaml", sample.frame.iloc[900:],
                                    "label").passed
            finally:
                del os.environ["BASTION_KEY_PASSPHRASE"]
    elif attack == "edited_policy":
        text = (sample.root / "bastion-policy.yaml").read_text().replace("accuracy: 0.6", "accuracy: 0.55")
        (sample.root / "bastion-policy.yaml").write_text(text)
    elif attack == "unscanned":
        from sqlalchemy import delete

        from bastion.store.schema import attachments

        with project.transaction() as tx:
            tx.execute(delete(attachments).where(attachments.c.doc_kind == "scan"))
    if attack == "not_alias":
        with pytest.raises(ConfigError, match="by alias"):
            load_trusted(project, ref)
        return
    with pytest.raises(BastionError) as info:
        load_trusted(project, "sample@production")
    assert isinstance(info.value, VerificationError) and info.value.exit_code == 1
    assert f"Refusing to serve {ref}" in str(info.value) and f"{expect}:" in str(info.value)


def _wait(pred: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_hot_reload_follows_the_alias_and_refuses_a_tampered_target(project: Any, sample: Any,
                                                                       keys: dict[str, str]) -> None:
    from starlette.testclient import TestClient

    from bastion.serve import create_app

    app = create_app(make_config(sample, poll_s=0.1), project=project)
    state = app.state.bastion
    body = {"instances": [good_row(sample)]}
    with TestClient(app) as c:
        # 1. a tampered target: refused, v1 keeps serving, refusal audited once
        _tamper_artifact(project, sample.refs[1])
        from bastion.errors import PolicyViolation

        with pytest.raises(PolicyViolation):  # the promotion rules already refuse it …
            project.promote(sample.refs[1], alias="production")
        _force_alias(project, sample.refs[1])  # … so the attacker moves the alias in the database directly
        assert _wait(lambda: state.last_refusal is not None)
        r = c.post("/v1/models/sample:predict", json=body, headers=bearer(keys["predict"]))
        assert r.status_code == 200 and r.json()["version"] == 1
        refused = project.audit.entries(action="serve.reload.refused")
        assert len(refused) == 1 and "digest" in " ".join(refused[0].details["reasons"])
        r = c.post("/v1/admin/reload", headers=bearer(keys["admin"]))
        assert r.status_code == 409 and r.json()["serving"] == sample.refs[0]
        # 2. roll back to a trusted version: switched without restart
        _force_alias(project, sample.refs[0])
        assert c.post("/v1/admin/reload", headers=bearer(keys["admin"])).json()["status"] == "unchanged"


def test_hot_reload_switches_to_a_trusted_version_and_back(project: Any, sample: Any, keys: dict[str, str]) -> None:
    from starlette.testclient import TestClient

    from bastion.serve import create_app

    app = create_app(make_config(sample, poll_s=0.1), project=project)
    state = app.state.bastion
    body = {"instances": [good_row(sample)]}
    with TestClient(app) as c:
        project.promote(sample.refs[1], alias="production")
        assert _wait(lambda: state.current.ref == sample.refs[1])
        r = c.post("/v1/models/sample:predict", json=body, headers=bearer(keys["predict"]))
        assert r.json()["version"] == 2
        project.rollback("sample", alias="production", reason="test")
        assert _wait(lambda: state.current.ref == sample.refs[0])
        assert c.post("/v1/models/sample:predict", json=body, headers=bearer(keys["predict"])).json()["version"] == 1
    moves = [(e.details["from"], e.details["to"]) for e in project.audit.entries(action="serve.reload",
                                                                                 newest_first=False)
             if e.action == "serve.reload"]
    assert moves == [(sample.refs[0], sample.refs[1]), (sample.refs[1], sample.refs[0])]


def test_signature_forged_after_promotion_is_refused_on_forced_reload(project: Any, sample: Any,
                                                                      keys: dict[str, str]) -> None:
    from starlette.testclient import TestClient

    from bastion.serve import create_app

    app = create_app(make_config(sample), project=project)
    with TestClient(app) as c:
        _forge_signature(project, sample.refs[0])
        r = c.post("/v1/admin/reload", headers=bearer(keys["admin"]))
        assert r.status_code == 409
        assert any(x.startswith("signature:") for x in r.json()["reasons"])
        # the verified in-memory copy keeps answering
        assert c.post("/v1/models/sample:predict", json={"instances": [good_row(sample)]},
                      headers=bearer(keys["predict"])).status_code == 200


def _force_alias(project: Any, ref: str) -> None:
    """Point production at ``ref`` bypassing the promotion rules (what a database-level attacker could do)."""
    from sqlalchemy import update

    from bastion.store.schema import aliases

    name, version = ref.split(":")
    with project.transaction() as tx:
        tx.execute(update(aliases).where(aliases.c.kind == "model", aliases.c.name == name,
                                         aliases.c.alias == "production")
                   .values(version=int(version)))
