"""API keys (shown once, stored as a digest, revocable without restart) and JWT bearer tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.errors import AuthError, KeyManagementError


@pytest.fixture
def bare_project(tmp_path: Path) -> Any:
    from bastion.project import init_project

    p = init_project(tmp_path / "p")
    yield p
    p.close()


def test_key_is_256_bits_shown_once_and_stored_as_digest(bare_project: Any) -> None:
    from sqlalchemy import select

    from bastion.serve.auth import api_keys_path, create_api_key, list_api_keys
    from bastion.store.schema import api_keys

    made = create_api_key(bare_project, "billing-app", ["predict"])
    prefix, kid, secret = made.key.split("_", 2)
    assert prefix == "bst" and len(kid) == 8
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    with bare_project.db.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(api_keys))]
    stored = json.dumps(rows)
    assert made.key not in stored and secret not in stored
    assert rows[0]["digest"] == "sha256:" + hashlib.sha256(made.key.encode()).hexdigest()
    assert not api_keys_path(bare_project).exists()  # nothing on local disk: the database is shared
    [rec] = list_api_keys(bare_project)
    assert rec.roles == ("predict",) and rec.digest.startswith("sha256:") and rec.active
    assert "key" not in rec.to_dict()
    audit = bare_project.audit.entries(action="keys.api.create")
    assert audit and audit[0].subject == f"api-key:{kid}" and secret not in json.dumps(audit[0].details)


@pytest.mark.parametrize(("name", "roles", "ok"), [
    ("svc", ["predict", "explain"], True),
    ("svc", [], False),
    ("svc", ["root"], False),
    ("bad name!", ["predict"], False),
    ("", ["predict"], False),
])
def test_create_validates_name_and_roles(bare_project: Any, name: str, roles: list[str], ok: bool) -> None:
    from bastion.serve.auth import create_api_key

    if ok:
        assert create_api_key(bare_project, name, roles).record.roles == tuple(roles)
    else:
        with pytest.raises(KeyManagementError):
            create_api_key(bare_project, name, roles)


def test_authenticate_and_revoke(bare_project: Any) -> None:
    from bastion.serve.auth import ApiKeyStore, Authenticator, create_api_key, revoke_api_key

    k = create_api_key(bare_project, "app", ["explain"]).key
    auth = Authenticator(ApiKeyStore(bare_project.db, recheck_s=0.0))
    p = auth.authenticate(f"Bearer {k}")
    assert p.allows("explain") and not p.allows("predict") and not p.allows("admin")
    flipped = k[:-1] + ("B" if k[-1] == "A" else "A")
    unknown = "Bearer bst_00000000_" + "A" * 43
    for bad in [None, "", "Bearer", f"Basic {k}", f"Bearer {flipped}", f"Bearer {k}x", unknown]:
        with pytest.raises(AuthError):
            auth.authenticate(bad)
    revoke_api_key(bare_project, "app", reason="rotated")
    with pytest.raises(AuthError, match="invalid credentials"):
        auth.authenticate(f"Bearer {k}")
    with pytest.raises(KeyManagementError):
        revoke_api_key(bare_project, "app")
    assert bare_project.audit.entries(action="keys.api.revoke")[0].details["reason"] == "rotated"


def test_unreadable_keys_fail_closed(bare_project: Any) -> None:
    from sqlalchemy import update

    from bastion.serve.auth import ApiKeyStore, Authenticator, create_api_key
    from bastion.store.schema import api_keys

    k = create_api_key(bare_project, "app", ["predict"]).key
    auth = Authenticator(ApiKeyStore(bare_project.db, recheck_s=0.0))
    auth.authenticate(f"Bearer {k}")
    with bare_project.db.write() as conn:  # a row someone corrupted: every key is refused, not just that one
        conn.execute(update(api_keys).values(roles_json="{nope"))
    with pytest.raises(AuthError):
        auth.authenticate(f"Bearer {k}")


def test_database_outage_fails_closed_and_recovers(bare_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.errors import StoreError
    from bastion.serve.auth import ApiKeyStore, Authenticator, create_api_key

    k = create_api_key(bare_project, "app", ["predict"]).key
    store = ApiKeyStore(bare_project.db, recheck_s=0.0)
    auth = Authenticator(store)
    auth.authenticate(f"Bearer {k}")
    real = store.records

    def down() -> Any:
        raise StoreError("Cannot read the metadata database postgresql://db.example/x: connection refused")

    monkeypatch.setattr(store, "records", down)
    with pytest.raises(AuthError):
        auth.authenticate(f"Bearer {k}")
    monkeypatch.setattr(store, "records", real)
    assert auth.authenticate(f"Bearer {k}").name == "app"


def test_legacy_keys_file_is_imported_once(bare_project: Any) -> None:
    from bastion.serve.auth import ApiKeyStore, Authenticator, _digest, api_keys_path, list_api_keys

    key = "bst_0123abcd_" + "k" * 43
    path = api_keys_path(bare_project)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema_version": 1, "keys": [
        {"id": "0123abcd", "name": "old", "roles": ["predict"], "digest": _digest(key), "created_at": "t",
         "created_by": "u"}]}))
    assert [r.name for r in list_api_keys(bare_project)] == ["old"]
    assert not path.exists() and path.with_name("keys.json.imported").is_file()
    assert Authenticator(ApiKeyStore(bare_project.db)).authenticate(f"Bearer {key}").name == "old"
    assert len(list_api_keys(bare_project)) == 1
    assert bare_project.audit.entries(action="keys.api.import")[0].details["count"] == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.text(max_size=200))
def test_any_header_is_either_a_principal_or_auth_error(bare_project: Any, header: str) -> None:
    from bastion.serve.auth import ApiKeyStore, Authenticator

    auth = Authenticator(ApiKeyStore(bare_project.db))
    with pytest.raises(AuthError):
        auth.authenticate(header)
    with pytest.raises(AuthError):
        auth.authenticate("Bearer " + header)


# ------------------------------------------------------------------------------------------ JWT


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _int_b64(n: int) -> str:
    return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def _token(key: Any, alg: str, kid: str, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    h = _b64(json.dumps(header or {"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    p = _b64(json.dumps(claims).encode())
    signed = f"{h}.{p}".encode()
    if alg == "RS256":
        sig = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{h}.{p}.{_b64(sig)}"


@pytest.fixture(scope="module")
def jwks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rn, en = rsa_key.public_key().public_numbers(), ec_key.public_key().public_numbers()
    doc = {"keys": [
        {"kty": "RSA", "kid": "r1", "use": "sig", "n": _int_b64(rn.n), "e": _int_b64(rn.e)},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": _b64(en.x.to_bytes(32, "big")),
         "y": _b64(en.y.to_bytes(32, "big"))},
    ]}
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps(doc))
    return path, rsa_key, ec_key


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "https://idp.example", "aud": "bastion", "sub": "svc-a", "exp": now + 60, "iat": now,
            "roles": ["predict"], **over}


def test_jwt_good_tokens(jwks: tuple[Path, Any, Any]) -> None:
    from bastion.serve._jwt import JwtSettings, JwtVerifier

    path, rk, ek = jwks
    v = JwtVerifier(JwtSettings(jwks=str(path), issuer="https://idp.example", audience="bastion"))
    p = v.verify(_token(rk, "RS256", "r1", _claims()))
    assert p.key_id == "jwt:svc-a" and p.roles == frozenset({"predict"}) and p.kind == "jwt"
    p = v.verify(_token(ek, "ES256", "e1", _claims(aud=["x", "bastion"], roles="explain admin")))
    assert p.roles == frozenset({"explain", "admin"})


@pytest.mark.parametrize("attack", ["expired", "no_exp", "wrong_aud", "wrong_iss", "not_yet", "alg_none", "hs256",
                                    "unknown_kid", "wrong_key_type", "tampered_payload", "no_roles", "no_sub"])
def test_jwt_attacks_are_refused(jwks: tuple[Path, Any, Any], attack: str) -> None:
    from bastion.serve._jwt import JwtSettings, JwtVerifier

    path, rk, ek = jwks
    v = JwtVerifier(JwtSettings(jwks=str(path), issuer="https://idp.example", audience="bastion"))
    now = int(time.time())
    tok = {
        "expired": lambda: _token(rk, "RS256", "r1", _claims(exp=now - 3600)),
        "no_exp": lambda: _token(rk, "RS256", "r1", {k: v for k, v in _claims().items() if k != "exp"}),
        "wrong_aud": lambda: _token(rk, "RS256", "r1", _claims(aud="other")),
        "wrong_iss": lambda: _token(rk, "RS256", "r1", _claims(iss="https://evil.example")),
        "not_yet": lambda: _token(rk, "RS256", "r1", _claims(nbf=now + 3600)),
        "alg_none": lambda: _b64(b'{"alg":"none","kid":"r1"}') + "." + _b64(json.dumps(_claims()).encode()) + ".",
        "hs256": lambda: _b64(b'{"alg":"HS256","kid":"r1"}') + "." + _b64(json.dumps(_claims()).encode()) + ".AAAA",
        "unknown_kid": lambda: _token(rk, "RS256", "r9", _claims()),
        "wrong_key_type": lambda: _token(ek, "ES256", "r1", _claims()),
        "tampered_payload": lambda: (lambda t: t.split(".")[0] + "." + _b64(json.dumps(_claims(roles=["admin"]))
                                                                              .encode()) + "." + t.split(".")[2])(
            _token(rk, "RS256", "r1", _claims())),
        "no_roles": lambda: _token(rk, "RS256", "r1", _claims(roles=["root"])),
        "no_sub": lambda: _token(rk, "RS256", "r1", _claims(sub="")),
    }[attack]()
    with pytest.raises(AuthError):
        v.verify(tok)


def test_jwt_accepted_by_the_authenticator_and_jwks_reloaded(jwks: tuple[Path, Any, Any], tmp_path: Path) -> None:
    from bastion.serve._jwt import JwtSettings, JwtVerifier
    from bastion.serve.auth import ApiKeyStore, Authenticator
    from bastion.store.db import Database

    path, rk, _ = jwks
    local = tmp_path / "jwks.json"
    local.write_text(path.read_text())
    auth = Authenticator(ApiKeyStore(Database(f"sqlite:///{tmp_path / 'k.db'}")),
                         JwtVerifier(JwtSettings(jwks=str(local), issuer="https://idp.example", audience="bastion")))
    tok = _token(rk, "RS256", "r1", _claims())
    assert auth.authenticate(f"Bearer {tok}").name == "svc-a"
    local.write_text(json.dumps({"keys": []}))  # key removed from the JWKS: refused without restart
    os.utime(local, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    with pytest.raises(AuthError):
        auth.authenticate(f"Bearer {tok}")


def _signed(key: Any, header: bytes, payload: bytes) -> str:
    h, p = _b64(header), _b64(payload)
    sig = key.sign(f"{h}.{p}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{h}.{p}.{_b64(sig)}"


@pytest.mark.parametrize(("header", "exp", "accepted"), [
    ('{"alg":"RS256","kid":"r1"}', "NOW", True),  # the control: same forging path, valid token
    ('{"alg":"RS256","kid":"r1"}', "1e999", False),  # parses as infinity: "never expires"
    ('{"alg":"RS256","kid":"r1"}', "-1e999", False),
    ('{"alg":"RS256","kid":"r1"}', "true", False),  # a boolean is not a NumericDate
    ('{"alg":"RS256","kid":"r1"}', "253402300800", False),  # after 9999-12-31
    ('{"alg":"RS256","kid":"r1","crit":["exp"]}', "NOW", False),  # RFC 7515: unknown critical extensions
    ('{"alg":"RS256","kid":"r1","crit":[]}', "NOW", False),
    ('["RS256"]', "NOW", False),
])
def test_jwt_numeric_dates_and_crit_header(jwks: tuple[Path, Any, Any], header: str, exp: str, accepted: bool) -> None:
    """Signed with the right key, so only the exp claim or the crit header can make the difference."""
    from bastion.serve._jwt import JwtSettings, JwtVerifier

    path, rk, _ = jwks
    v = JwtVerifier(JwtSettings(jwks=str(path), issuer="https://idp.example", audience="bastion"))
    exp_text = str(int(time.time()) + 60) if exp == "NOW" else exp
    payload = json.dumps({**_claims(), "exp": "EXP"}).replace('"EXP"', exp_text).encode()
    tok = _signed(rk, header.encode(), payload)
    if accepted:
        assert v.verify(tok).key_id == "jwt:svc-a"
    else:
        with pytest.raises(AuthError):
            v.verify(tok)


def test_background_refresh_follows_revocation_and_fails_closed_when_stale(
        bare_project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from bastion.errors import StoreError
    from bastion.serve.auth import ApiKeyStore, Authenticator, create_api_key, revoke_api_key

    k = create_api_key(bare_project, "app", ["predict"]).key
    store = ApiKeyStore(bare_project.db, recheck_s=0.05, max_stale_s=0.3)
    auth = Authenticator(store)
    try:
        assert auth.authenticate(f"Bearer {k}").name == "app"
        revoke_api_key(bare_project, "app")
        deadline = time.monotonic() + 2
        while True:  # refused within the refresh period, no request ever reading the database itself
            try:
                auth.authenticate(f"Bearer {k}")
            except AuthError:
                break
            assert time.monotonic() < deadline, "revocation not seen within 2 s"
            time.sleep(0.02)
        k2 = create_api_key(bare_project, "app", ["predict"]).key
        time.sleep(0.3)
        assert auth.authenticate(f"Bearer {k2}").name == "app"

        def down() -> Any:
            raise StoreError("Cannot read the metadata database: connection refused")

        real = store.records
        monkeypatch.setattr(store, "records", down)
        time.sleep(0.6)  # longer than max_stale_s without a successful read: fail closed
        with pytest.raises(AuthError):
            auth.authenticate(f"Bearer {k2}")
        monkeypatch.setattr(store, "records", real)
        time.sleep(0.3)
        assert auth.authenticate(f"Bearer {k2}").name == "app"
    finally:
        store.close()
