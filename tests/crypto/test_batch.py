from __future__ import annotations

import base64
import os

import numpy as np
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.crypto import _batch
from bastion.crypto._batch import MIN_GROUP, MIN_VECTOR, GcmBatch, Packed, SivBatch, b64url_encode
from bastion.crypto._util import b64d, b64e
from bastion.crypto.aead import CellCipher, associated_data
from bastion.crypto.tokenize import Tokenizer
from bastion.data.protect import operators as ops
from bastion.errors import KeyManagementError

KEY = os.urandom(32)
CASES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

values_st = st.lists(st.binary(max_size=70), max_size=150)
# Enough values for the round-parallel (ragged) path, of too many lengths for the dense one.
ragged_st = st.lists(st.binary(max_size=90), min_size=MIN_VECTOR, max_size=MIN_GROUP)
# Many values of few lengths (the dense path), plus some of other lengths (the ragged path).
dense_st = st.tuples(
    st.sampled_from([0, 1, 11, 15, 16, 17, 19, 31, 32, 33, 48, 130]),
    st.integers(min_value=MIN_GROUP, max_value=MIN_GROUP + 40),
    st.lists(st.binary(max_size=60), max_size=80),
)


def _dense_values(spec: tuple[int, int, list[bytes]]) -> list[bytes]:
    length, count, others = spec
    rng = np.random.default_rng(length * 1000 + count)
    same = [rng.bytes(length) for _ in range(count)]
    mixed = same + others
    rng.shuffle(mixed)
    return mixed


def _siv_expected(key: bytes, ad: list[bytes], values: list[bytes]) -> list[bytes]:
    siv = AESSIV(key)
    return [siv.encrypt(v, ad) for v in values]


def _gcm_expected(key: bytes, nonces: bytes, ad: bytes, values: list[bytes]) -> list[bytes]:
    gcm = AESGCM(key)
    return [
        nonces[12 * i : 12 * i + 12] + gcm.encrypt(nonces[12 * i : 12 * i + 12], v, ad) for i, v in enumerate(values)
    ]


# ------------------------------------------------------------------ AES-SIV


@CASES
@given(
    key=st.sampled_from([32, 48, 64]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    ad=st.lists(st.binary(max_size=40), max_size=3),
    values=st.one_of(values_st, ragged_st),
)
def test_siv_matches_cryptography_byte_for_byte(key, ad, values):
    out = SivBatch(key, ad).encrypt(Packed.from_list(values)).to_list()
    assert out == _siv_expected(key, ad, values)
    siv = AESSIV(key)
    assert [siv.decrypt(t, ad) for t in out] == values


@CASES
@given(key=st.binary(min_size=64, max_size=64), spec=dense_st)
def test_siv_dense_path_matches_cryptography(key, spec):
    values = _dense_values(spec)
    ad = [b"bastion.tokenize.v1|default"]
    batch = SivBatch(key, ad)
    packed = Packed.from_list(values)
    expected = _siv_expected(key, ad, values)
    assert batch.encrypt(packed).to_list() == expected
    assert batch.encrypt_b64(packed).to_list() == [b64e(t).encode() for t in expected]


@CASES
@given(values=st.lists(st.text(max_size=60), max_size=120))
def test_siv_unicode_text_round_trips_through_cryptography(values):
    key = os.urandom(64)
    raw = [v.encode("utf-8") for v in values]
    out = SivBatch(key, [b"d"]).encrypt(Packed.from_list(raw)).to_list()
    assert [AESSIV(key).decrypt(t, [b"d"]).decode("utf-8") for t in out] == values


# ------------------------------------------------------------------ AES-GCM


@CASES
@given(
    key=st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    ad=st.binary(max_size=60),
    values=st.one_of(values_st, ragged_st),
)
def test_gcm_matches_cryptography_byte_for_byte(key, ad, values):
    nonces = os.urandom(12 * len(values))
    out = GcmBatch(key).encrypt(nonces, Packed.from_list(values), ad).to_list()
    assert out == _gcm_expected(key, nonces, ad, values)
    gcm = AESGCM(key)
    assert [gcm.decrypt(c[:12], c[12:], ad) for c in out] == values


@CASES
@given(key=st.binary(min_size=32, max_size=32), ad=st.binary(max_size=60), spec=dense_st)
def test_gcm_dense_path_matches_cryptography(key, ad, spec):
    values = _dense_values(spec)
    nonces = os.urandom(12 * len(values))
    batch = GcmBatch(key)
    expected = _gcm_expected(key, nonces, ad, values)
    assert batch.encrypt(nonces, Packed.from_list(values), ad).to_list() == expected
    assert batch.encrypt_b64(nonces, Packed.from_list(values), ad).to_list() == [b64e(c).encode() for c in expected]


def test_gcm_nonce_count_is_checked():
    with pytest.raises(ValueError, match="nonces"):
        GcmBatch(os.urandom(32)).encrypt(os.urandom(11), Packed.from_list([b"x"]), b"")


def test_gf_multiply_tables_agree_with_cryptography_on_long_dense_values():
    # Blocks past _POWERS_MAX use the chained GHASH inside the dense path; below it, powers of H.
    key, ad = os.urandom(32), b"a" * 33
    for length in (16 * _batch._POWERS_MAX - 1, 16 * _batch._POWERS_MAX + 5):
        values = [os.urandom(length) for _ in range(MIN_GROUP)]
        nonces = os.urandom(12 * len(values))
        assert GcmBatch(key).encrypt(nonces, Packed.from_list(values), ad).to_list() == _gcm_expected(
            key, nonces, ad, values
        )


# ------------------------------------------------------------------ paths, layouts, base64


@pytest.mark.parametrize("count", [0, 1, MIN_VECTOR - 1, MIN_VECTOR, MIN_VECTOR + 1, MIN_GROUP + 3])
def test_every_batch_size_and_a_long_tail(count):
    rng = np.random.default_rng(count)
    values = [rng.bytes(int(n)) for n in rng.integers(0, 40, count)]
    if count > 3:  # a few values far longer than the rest take the per-value path
        values[0], values[-1] = rng.bytes(5000), rng.bytes(3333)
    key, gkey = os.urandom(64), os.urandom(32)
    assert SivBatch(key, [b"x"]).encrypt(Packed.from_list(values)).to_list() == _siv_expected(key, [b"x"], values)
    nonces = os.urandom(12 * count)
    got = GcmBatch(gkey).encrypt_b64(nonces, Packed.from_list(values), b"ad").to_list()
    assert got == [b64e(c).encode() for c in _gcm_expected(gkey, nonces, b"ad", values)]


def test_packed_slices_with_nonzero_first_offset():
    values = [b"zero", b"", b"two", b"three" * 9]
    full = Packed.from_list([b"skip-me", *values, b"and-me"])
    sliced = Packed(full.offsets[1:-1], full.data)
    key = os.urandom(64)
    assert sliced.to_list() == values
    assert SivBatch(key, []).encrypt(sliced).to_list() == _siv_expected(key, [], values)
    assert sliced.take(np.array([3, 0], dtype=np.int64)).to_list() == [values[3], values[0]]


@given(st.lists(st.binary(max_size=50), max_size=100))
@settings(max_examples=60, deadline=None)
def test_b64url_matches_the_standard_library(values):
    out = b64url_encode(Packed.from_list(values)).to_list()
    assert out == [base64.urlsafe_b64encode(v).rstrip(b"=") for v in values]


# ------------------------------------------------------------------ wired into the public classes


@CASES
@given(values=st.lists(st.text(max_size=40), max_size=80))
def test_tokenizer_batch_equals_scalar_and_detokenizes(values):
    tok = Tokenizer(KEY, key_id="k", domain="patients")
    raw = [v.encode("utf-8") for v in values]
    assert tok.tokenize_many(raw) == [tok.tokenize(v) for v in raw]
    texts = tok.tokenize_b64(Packed.from_list(raw)).to_list()
    assert texts == [b64e(tok.tokenize(v)).encode() for v in raw]
    assert [tok.detokenize(b64d(t)) for t in texts] == raw


@CASES
@given(values=st.lists(st.text(max_size=40), max_size=80))
def test_cell_cipher_batch_decrypts_with_the_scalar_path(values):
    c = CellCipher(KEY, key_id="dk-1")
    raw = [v.encode("utf-8") for v in values]
    blobs = c.encrypt_many(raw, column="ssn")
    assert c.decrypt_many(blobs, column="ssn") == raw
    texts = c.encrypt_b64(Packed.from_list(raw), column="ssn").to_list()
    assert c.decrypt_many([b64d(t) for t in texts], column="ssn") == raw
    assert len(set(texts)) == len(texts)  # randomized: equal values still give different ciphertexts


def test_cell_cipher_batch_binds_the_column():
    c = CellCipher(KEY, key_id="dk-1")
    raw = [b"123-45-6789"] * (MIN_GROUP + 1)
    blob = b64d(c.encrypt_b64(Packed.from_list(raw), column="ssn").to_list()[7])
    assert AESGCM(c._key).decrypt(blob[:12], blob[12:], associated_data("dk-1", "ssn")) == raw[0]
    with pytest.raises(KeyManagementError, match="moved from another"):
        c.decrypt(blob, column="card")


def test_operators_use_the_batch_path_and_match_scalar_outputs():
    tok, cipher = Tokenizer(KEY, key_id="k"), CellCipher(KEY, key_id="dk-1")
    cells = [f"user{i % 700}@example.com" if i % 13 else None for i in range(2000)]
    arr = pa.array(cells, pa.string()).slice(5, 1500)  # a slice: buffers start past offset 0
    tokens = ops.tokenize_array(arr, tok, "email").to_pylist()
    assert tokens == [None if v is None else b64e(tok.tokenize(v.encode())) for v in arr.to_pylist()]
    enc = ops.encrypt_array(arr, cipher, "email").to_pylist()
    assert [None if e is None else cipher.decrypt(b64d(e), column="email").decode() for e in enc] == arr.to_pylist()
    assert ops.tokenize_array(pa.array([None, None], pa.string()), tok, "c").to_pylist() == [None, None]
    assert ops.encrypt_array(pa.array([], pa.string()), cipher, "c").to_pylist() == []
