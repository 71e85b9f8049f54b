"""sign_version / verify_version on a real project: stored bundle, keyring semantics, tampering."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.crypto.signing import TrustStore, init_signing_key, revoke_signing_key, rotate_signing_key
from bastion.gates.signatures import sign_version, verify_version


@pytest.fixture
def signed_project(project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "pw")
    src = tmp_path / "clf"
    (src / "sub").mkdir(parents=True)
    (src / "weights.bin").write_bytes(b"\x01" * 100_000)
    (src / "sub" / "config.json").write_text('{"k": 1}')
    mv = project.log_model(src, name="clf")
    init_signing_key(project, "release", passphrase="pw")
    return project, mv


def test_sign_stores_bundle_and_verifies(signed_project) -> None:
    project, mv = signed_project
    doc = sign_version(project, mv.ref)
    assert doc["schema_version"] == 1 and doc["files"] == 2 and doc["artifact_digest"] == mv.digest
    assert project.attachments(mv.ref, "signature")[-1]["bundle"] == doc["bundle"]
    status = verify_version(project, mv.ref)
    assert status.valid, status.reason
    assert status.signer == "key:release" and status.files_checked == 2
    assert status.key_fingerprint == doc["key"]["fingerprint"]


def test_unsigned_version_is_invalid(signed_project) -> None:
    project, mv = signed_project
    status = verify_version(project, mv.ref)
    assert not status.valid and "no signature" in status.reason


def test_rotated_key_still_valid_revoked_key_refused(signed_project) -> None:
    project, mv = signed_project
    sign_version(project, mv.ref)
    rotate_signing_key(project, "release", passphrase="pw")
    status = verify_version(project, mv.ref)
    assert status.valid and status.key_status == "rotated"
    old = next(k for k in project_keys(project) if k.status == "rotated")
    revoke_signing_key(project, "release", reason="compromised", fingerprint=old.fingerprint)
    status = verify_version(project, mv.ref)
    assert not status.valid and "revoked" in status.reason


def project_keys(project):
    from bastion.crypto.signing import list_signing_keys

    return list_signing_keys(project)


def test_swapped_artifact_after_signing_is_detected(signed_project, tmp_path: Path) -> None:
    project, mv = signed_project
    sign_version(project, mv.ref)
    # Another version's signature copied onto this one (swapped bundle).
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.bin").write_bytes(b"\x02" * 10)
    mv2 = project.log_model(other, name="clf")
    project.attach(mv2.ref, "signature", project.attachments(mv.ref, "signature")[-1])
    status = verify_version(project, mv2.ref)
    assert not status.valid
    assert status.mismatched == ("weights.bin",) and status.missing == ("sub/config.json",)


def test_stray_file_in_model_cache_does_not_break_verification(signed_project) -> None:
    project, mv = signed_project
    sign_version(project, mv.ref)
    cached = project.model_path(mv.ref)
    (cached / "stray.txt").write_text("left over")
    assert verify_version(project, mv.ref).valid  # verification uses a fresh verified copy


def test_tampered_store_blob_is_refused(signed_project) -> None:
    project, mv = signed_project
    sign_version(project, mv.ref)
    blobs = [p for p in Path(project.settings.artifacts).rglob("*") if p.is_file()]
    blob = next(p for p in blobs if p.stat().st_size == 100_000 and p.read_bytes() == b"\x01" * 100_000)
    blob.chmod(0o644)
    blob.write_bytes(b"\x01" * 99_999 + b"\x02")
    status = verify_version(project, mv.ref)
    assert not status.valid and status.reason


def test_allowed_signers_and_explicit_trust(signed_project) -> None:
    project, mv = signed_project
    sign_version(project, mv.ref)
    assert verify_version(project, mv.ref, allowed_signers=["key:release"]).valid
    status = verify_version(project, mv.ref, allowed_signers=["key:someone-else"])
    assert not status.valid and "not an allowed signer" in status.reason
    assert not verify_version(project, mv.ref, trust=TrustStore()).valid


def test_single_file_artifact(project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"onnx-bytes")
    mv = project.log_model(f, name="single", flavor="file")  # opaque bytes: stored and signed, never loaded
    init_signing_key(project, "release", passphrase="pw")
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "pw")
    assert sign_version(project, mv.ref)["files"] == 1
    status = verify_version(project, mv.ref)
    assert status.valid and status.files_checked == 1
