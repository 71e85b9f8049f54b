"""Column-at-a-time tokenization and encryption: every value through ``cryptography``'s AEAD classes."""

from __future__ import annotations

import ast
import base64
import os
from pathlib import Path

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bastion.crypto
from bastion.crypto._packed import Packed, b64url_packed
from bastion.crypto._util import b64d, b64e, derive_key
from bastion.crypto.aead import CellCipher, associated_data
from bastion.crypto.tokenize import Tokenizer
from bastion.data.protect import operators as ops
from bastion.errors import KeyManagementError

KEY = os.urandom(32)
CASES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(st.lists(st.binary(max_size=50), max_size=100))
@settings(max_examples=60, deadline=None)
def test_packed_round_trips_and_b64url_matches_the_standard_library(values):
    packed = Packed.from_list(values)
    assert len(packed) == len(values)
    assert packed.to_list() == values
    assert b64url_packed(values).to_list() == [base64.urlsafe_b64encode(v).rstrip(b"=") for v in values]


def test_packed_slices_with_nonzero_first_offset():
    values = [b"zero", b"", b"two", b"three" * 9]
    full = Packed.from_list([b"skip-me", *values, b"and-me"])
    sliced = Packed(full.offsets[1:-1], full.data)
    assert sliced.to_list() == values


@CASES
@given(values=st.lists(st.text(max_size=40), max_size=80))
def test_tokenizer_column_equals_scalar_and_cryptography_and_detokenizes(values):
    tok = Tokenizer(KEY, key_id="k", domain="patients")
    raw = [v.encode("utf-8") for v in values]
    siv = AESSIV(derive_key(KEY, "bastion/tokenize/aes-256-siv/v1/patients", length=64))
    expected = [siv.encrypt(v, [b"bastion.tokenize.v1|patients"]) for v in raw]
    assert tok.tokenize_many(raw) == expected == [tok.tokenize(v) for v in raw]
    texts = tok.tokenize_b64(Packed.from_list(raw)).to_list()
    assert texts == [b64e(t).encode() for t in expected]
    assert [tok.detokenize(b64d(t)) for t in texts] == raw


@CASES
@given(values=st.lists(st.text(max_size=40), max_size=80))
def test_cell_cipher_column_decrypts_with_the_scalar_path(values):
    c = CellCipher(KEY, key_id="dk-1")
    raw = [v.encode("utf-8") for v in values]
    blobs = c.encrypt_many(raw, column="ssn")
    assert c.decrypt_many(blobs, column="ssn") == raw
    texts = c.encrypt_b64(Packed.from_list(raw), column="ssn").to_list()
    assert c.decrypt_many([b64d(t) for t in texts], column="ssn") == raw
    nonces = [b64d(t)[:12] for t in texts] + [b[:12] for b in blobs]
    assert len(set(nonces)) == len(nonces)  # a fresh nonce for every value, never reused


def test_cell_cipher_output_is_plain_aes_gcm_bound_to_the_column():
    c = CellCipher(KEY, key_id="dk-1")
    raw = [b"123-45-6789"] * 300
    blob = b64d(c.encrypt_b64(Packed.from_list(raw), column="ssn").to_list()[7])
    gcm = AESGCM(derive_key(KEY, "bastion/encrypt/aes-256-gcm/v1"))
    assert gcm.decrypt(blob[:12], blob[12:], associated_data("dk-1", "ssn")) == raw[0]
    with pytest.raises(KeyManagementError, match="moved from another"):
        c.decrypt(blob, column="card")


def test_operators_match_scalar_outputs_on_sliced_arrays_with_nulls():
    tok, cipher = Tokenizer(KEY, key_id="k"), CellCipher(KEY, key_id="dk-1")
    cells = [f"user{i % 700}@example.com" if i % 13 else None for i in range(2000)]
    arr = pa.array(cells, pa.string()).slice(5, 1500)  # a slice: buffers start past offset 0
    tokens = ops.tokenize_array(arr, tok, "email").to_pylist()
    assert tokens == [None if v is None else b64e(tok.tokenize(v.encode())) for v in arr.to_pylist()]
    enc = ops.encrypt_array(arr, cipher, "email").to_pylist()
    assert [None if e is None else cipher.decrypt(b64d(e), column="email").decode() for e in enc] == arr.to_pylist()
    assert ops.tokenize_array(pa.array([None, None], pa.string()), tok, "c").to_pylist() == [None, None]
    assert ops.encrypt_array(pa.array([], pa.string()), cipher, "c").to_pylist() == []


def test_no_cipher_mode_is_written_by_hand():
    """AES is only reached through cryptography's AEAD classes: no raw ECB/CTR, no CMAC or GHASH of our own."""
    banned = {"ECB", "CTR", "CMAC", "Cipher"}
    root = Path(bastion.crypto.__file__).parent.parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cryptography"):
                names = {a.name for a in node.names}
                assert not names & banned, f"{path} imports {names & banned} from {node.module}"
