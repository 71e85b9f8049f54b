"""The OMS bundle format: statement layout, DSSE PAE, bundle shape, and refusal of malformed input."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bastion.crypto.signing import SigningKey, sign_model
from bastion.crypto.signing.oms import (
    BUNDLE_MEDIA_TYPE,
    MODEL_PREDICATE_TYPE,
    PAYLOAD_TYPE,
    build_model_statement,
    key_hint,
    model_manifest_from_statement,
    pae,
    parse_bundle,
)
from bastion.errors import KeyManagementError, VerificationError

from .conftest import CA


def test_pae_matches_dsse_spec() -> None:
    assert pae("t", b"hello") == b"DSSEv1 1 t 5 hello"


def test_bundle_shape_matches_upstream(model: Path, signing_key: SigningKey) -> None:
    bundle = sign_model(model, signing_key)
    assert bundle["mediaType"] == BUNDLE_MEDIA_TYPE
    assert bundle["verificationMaterial"] == {"publicKey": {"hint": key_hint(signing_key.public_key)},
                                              "tlogEntries": []}
    env = bundle["dsseEnvelope"]
    assert env["payloadType"] == PAYLOAD_TYPE and len(env["signatures"]) == 1
    st = json.loads(base64.b64decode(env["payload"]))
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == MODEL_PREDICATE_TYPE
    assert st["subject"][0]["name"] == "model"
    assert st["predicate"]["serialization"]["method"] == "files"
    names = [r["name"] for r in st["predicate"]["resources"]]
    assert names == ["a-b/x.txt", "config.json", "sub/deeper/empty.bin", "sub/tokenizer.txt", "weights.bin"]


def test_certificate_mode_carries_the_chain(model: Path, ca: CA, p256) -> None:
    leaf = ca.issue(p256)
    bundle = sign_model(model, SigningKey("c", p256, (leaf, ca.cert)))
    chain = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
    assert len(chain) == 2
    assert parse_bundle(bundle).certificates == (leaf, ca.cert)


def test_certificate_for_another_key_refused(model: Path, ca: CA, p256, other_key) -> None:
    with pytest.raises(KeyManagementError, match="does not belong"):
        sign_model(model, SigningKey("c", p256, (ca.issue(other_key),)))


def _mutate(bundle: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    b = copy.deepcopy(bundle)
    node = b
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return b


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["mediaType"], "application/vnd.dev.sigstore.bundle+json;version=0.1", "media type"),
        (["dsseEnvelope"], KeyError, "no DSSE envelope"),
        (["dsseEnvelope", "payloadType"], "text/plain", "payload type"),
        (["dsseEnvelope", "signatures"], [], "exactly one signature"),
        (["dsseEnvelope", "payload"], "@@not base64@@", "not valid base64"),
        (["dsseEnvelope", "signatures", 0, "sig"], 7, "base64 string"),
        (["verificationMaterial"], KeyError, "no verification material"),
        (["verificationMaterial", "publicKey"], KeyError, "neither a public key"),
    ],
)
def test_malformed_bundles_refused(model: Path, signing_key: SigningKey, path, value, message) -> None:
    good = sign_model(model, signing_key)
    parse_bundle(good)  # the good row parses
    with pytest.raises(VerificationError, match=message):
        parse_bundle(_mutate(good, path, value))


@pytest.mark.parametrize("doc", ["not json", b"[1, 2]", 3])
def test_non_objects_refused(doc: Any) -> None:
    with pytest.raises(VerificationError):
        parse_bundle(doc)


def _statement() -> dict[str, Any]:
    return build_model_statement("m", {"a": "aa" * 32, "b/c": "bb" * 32})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(predicateType="https://example/other"), "predicate type"),
        (lambda s: s.update(subject=[]), "exactly one subject"),
        (lambda s: s["predicate"]["serialization"].update(method="shards"), "files"),
        (lambda s: s["predicate"]["serialization"].update(allow_symlinks=True), "symbolic links"),
        (lambda s: s["predicate"]["serialization"].update(ignore_paths=["../x"]), "not allowed"),
        (lambda s: s["predicate"]["serialization"].update(ignore_paths=["."]), "not allowed"),
        (lambda s: s["predicate"]["resources"][0].update(digest="zz"), "Malformed resource"),
        (lambda s: s["predicate"]["resources"][1].update(name="a"), "duplicate"),
        (lambda s: s["predicate"]["resources"][0].update(digest="cc" * 32), "inconsistent"),
    ],
)
def test_bad_model_statements_refused(edit, message: str) -> None:
    good = _statement()
    assert set(model_manifest_from_statement(good).files) == {"a", "b/c"}
    edit(good)
    with pytest.raises(VerificationError, match=message):
        model_manifest_from_statement(good)
