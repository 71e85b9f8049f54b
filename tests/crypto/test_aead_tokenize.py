from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.crypto.aead import CellCipher
from bastion.crypto.tokenize import KeyedHasher, Tokenizer
from bastion.errors import KeyManagementError

KEY = os.urandom(32)


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_encrypt_round_trip_and_randomized(value):
    c = CellCipher(KEY, key_id="dk-1")
    data = value.encode("utf-8")
    a, b = c.encrypt(data, column="ssn"), c.encrypt(data, column="ssn")
    assert a != b
    assert c.decrypt(a, column="ssn") == data
    assert c.decrypt_many(c.encrypt_many([data, data], column="ssn"), column="ssn") == [data, data]


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_tokenize_round_trip_and_deterministic(value):
    t = Tokenizer(KEY, key_id="dk-1")
    data = value.encode("utf-8")
    assert t.tokenize(data) == t.tokenize(data)
    assert t.detokenize(t.tokenize(data)) == data


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-1],
        lambda b: b[:5],
        lambda b: bytes([b[0] ^ 1]) + b[1:],
        lambda b: b[:-1] + bytes([b[-1] ^ 0x80]),
    ],
)
def test_corrupted_ciphertext_is_refused(mutate):
    c = CellCipher(KEY, key_id="dk-1")
    blob = c.encrypt(b"123-45-6789", column="ssn")
    with pytest.raises(KeyManagementError):
        c.decrypt(mutate(blob), column="ssn")


def test_wrong_key_or_column_is_refused():
    blob = CellCipher(KEY, key_id="dk-1").encrypt(b"x", column="ssn")
    with pytest.raises(KeyManagementError, match="does not authenticate"):
        CellCipher(os.urandom(32), key_id="dk-1").decrypt(blob, column="ssn")
    with pytest.raises(KeyManagementError, match="moved from another"):
        CellCipher(KEY, key_id="dk-1").decrypt(blob, column="card")
    tok = Tokenizer(KEY, key_id="dk-1").tokenize(b"ann")
    with pytest.raises(KeyManagementError, match="does not decrypt"):
        Tokenizer(os.urandom(32), key_id="dk-2").detokenize(tok)
    with pytest.raises(KeyManagementError):
        Tokenizer(KEY, key_id="dk-1", domain="other").detokenize(tok)


def test_domains_and_keyed_hash():
    a, b = Tokenizer(KEY, key_id="k", domain="a"), Tokenizer(KEY, key_id="k", domain="b")
    assert a.tokenize(b"x") != b.tokenize(b"x")
    h1, h2 = KeyedHasher(KEY, key_id="k"), KeyedHasher(os.urandom(32), key_id="k")
    import hashlib

    assert h1.hash(b"x") == h1.hash(b"x") != h2.hash(b"x")
    assert h1.hash(b"x") != hashlib.sha256(b"x").hexdigest()
    assert "KEY" not in repr(a) and KEY.hex() not in repr(a) + repr(h1) + repr(CellCipher(KEY, key_id="k"))


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_key_size_checked(size):
    with pytest.raises(KeyManagementError, match="32 bytes"):
        CellCipher(os.urandom(size), key_id="k")
