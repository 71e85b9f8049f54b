"""Vectorized AES-SIV (RFC 5297), AES-GCM and base64url over a whole batch of values at once.

Byte-identical to ``cryptography``'s ``AESSIV``/``AESGCM``; a batch costs a few AES-ECB calls, not one per value.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.cmac import CMAC
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

__all__ = ["MIN_VECTOR", "GcmBatch", "Packed", "SivBatch", "b64url_encode"]

U8 = NDArray[np.uint8]
U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
# 16-byte blocks as single numpy items: gathers and scatters of ``V16`` items are ~5x faster than of (n, 16)
# uint8 rows; XORs go through a uint64 view of the same memory.
Blocks = NDArray[np.void]

# Below this many values one library call per value is cheaper than the fixed cost of a round-parallel pass;
# it is also the most values that ever take the per-value path because they are much longer than the rest.
MIN_VECTOR = 64
_ZERO = bytes(16)


@dataclass(frozen=True)
class Packed:
    """Many byte strings in one buffer, laid out like an Arrow binary column.

    Value ``i`` is ``data[offsets[i]:offsets[i + 1]]``; ``offsets`` is monotonic with ``len(values) + 1`` entries
    (it may start above 0, as an Arrow slice does).
    """

    offsets: I64
    data: U8

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_list(cls, values: Sequence[bytes]) -> Packed:
        """Pack a sequence of ``bytes``."""
        lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
        return cls(_offsets(lengths), np.frombuffer(b"".join(values), dtype=np.uint8))

    def to_list(self) -> list[bytes]:
        """The values as ``bytes`` objects."""
        raw = self.data.tobytes()
        offs = self.offsets.tolist()
        return [raw[a:b] for a, b in zip(offs[:-1], offs[1:], strict=True)]

    @property
    def lengths(self) -> I64:
        """Length of each value in bytes."""
        return np.diff(self.offsets)

    def body(self) -> U8:
        """The bytes of all values, back to back (a view)."""
        return self.data[int(self.offsets[0]) : int(self.offsets[-1])]

    def take(self, index: I64) -> Packed:
        """The values at ``index``, in that order."""
        listed = self.to_list()
        return Packed.from_list([listed[i] for i in index.tolist()])


# ------------------------------------------------------------------ layout helpers


def _offsets(lengths: I64) -> I64:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _runs(starts: I64, counts: I64, stride: int) -> I64:
    """``starts[i] + stride * k`` for ``k < counts[i]``, for every ``i`` in order.

    One cumulative sum over the output instead of ``np.repeat`` per element (several times cheaper).
    """
    keep = counts > 0
    s, c = starts[keep], counts[keep]
    total = int(c.sum())
    step = np.full(total, stride, dtype=np.int64)
    if total:
        first = _offsets(c)[:-1]
        step[0] = s[0]
        step[first[1:]] = s[1:] - s[:-1] - stride * (c[:-1] - 1)
    return np.cumsum(step)


def _items(buf: U8, width: int, count: int) -> NDArray[Any]:
    """A writeable view where item ``p`` is ``buf[p:p + width]`` as one ``V<width>`` item (for ``p < count``)."""
    assert count + width - 1 <= len(buf)  # noqa: S101 - internal invariant: the view never leaves ``buf``
    return as_strided(buf, shape=(count,), strides=(1,)).view(np.dtype(f"V{width}"))[:count]


def _u8(b: Blocks) -> U8:
    return b.view(np.uint8).reshape(len(b), 16)


def _u64(b: Blocks) -> U64:
    return b.view(np.uint64).reshape(len(b), 2)


def _blk(words: NDArray[Any]) -> Blocks:
    out: Blocks = np.ascontiguousarray(words).view("V16").reshape(-1)
    return out


def _table(rows: Sequence[bytes] | U8) -> Blocks:
    return _blk(np.frombuffer(b"".join(rows), dtype=np.uint8) if isinstance(rows, list) else np.asarray(rows))


def _xor_at(blocks: Blocks, index: I64, values: Blocks) -> None:
    """``blocks[index] ^= values`` (``index`` without repeats)."""
    blocks[index] = _blk(_u64(blocks[index]) ^ _u64(values))


_MASK = _blk(np.where(np.arange(16)[None, :] < np.arange(17)[:, None], 0xFF, 0).astype(np.uint8))


def _data_blocks(values: Packed, counts: I64) -> tuple[Blocks, I64, I64]:
    """Every value cut into ``counts[i]`` 16-byte blocks, zero-padded after its end.

    Returns the blocks, each value's first block, and the data bytes in each value's last block.
    """
    body = values.body()
    src = np.zeros(len(body) + 16, dtype=np.uint8)
    src[: len(body)] = body
    rel = values.offsets[:-1] - values.offsets[0]
    blocks: Blocks = np.ascontiguousarray(_items(src, 16, len(body) + 1)[_runs(rel, counts, 16)])
    start = _offsets(counts)[:-1]
    rem = values.lengths - 16 * (counts - 1)
    has = counts > 0
    last = (start + counts - 1)[has]
    blocks[last] = _blk(_u64(blocks[last]) & _u64(_MASK[rem[has]]))
    return blocks, start, rem


def _ecb(key: bytes) -> Callable[[Blocks], Blocks]:
    """AES-ECB over many blocks in one library call (the only AES primitive the batch paths use)."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - raw block cipher for SIV/GCM

    def run(blocks: Blocks) -> Blocks:
        return _blk(np.frombuffer(enc.update(np.ascontiguousarray(blocks).tobytes()), dtype=np.uint8))

    return run


def _sorted_rounds(nblocks: I64) -> tuple[I64, list[int]]:
    """Order values by block count, longest first, and how many are still active in each round."""
    order = np.argsort(-nblocks, kind="stable")
    counts = np.bincount(nblocks, minlength=int(nblocks.max()) + 1)
    active = len(nblocks) - np.cumsum(counts)
    return order, [int(c) for c in active[: int(nblocks.max())]]


def _long_tail(nblocks: I64) -> NDArray[np.bool_]:
    """Values so much longer than the rest that rounds for them alone would cost more than one call each."""
    if len(nblocks) < MIN_VECTOR:
        return np.ones(len(nblocks), dtype=bool)
    cut = np.partition(nblocks, len(nblocks) - MIN_VECTOR)[len(nblocks) - MIN_VECTOR]
    return np.asarray(nblocks > cut)


@dataclass(frozen=True)
class _Spread:
    """Outputs written into one buffer, value ``i`` at ``start[i]`` (a multiple of 3) with ``length[i]`` bytes.

    Bytes between values are zero, so one base64 call over the buffer encodes every value at once.
    """

    buf: U8
    start: I64
    length: I64

    @classmethod
    def allocate(cls, lengths: I64) -> _Spread:
        start = _offsets(-(-lengths // 3) * 3)
        # 16 bytes of slack: block writes near the end may run past the last value (and are zero or overwritten)
        return cls(np.zeros(int(start[-1]) + 16, dtype=np.uint8), start, lengths)

    def put(self, i: int, value: bytes) -> None:
        s = int(self.start[i])
        self.buf[s : s + len(value)] = np.frombuffer(value, dtype=np.uint8)

    def packed(self) -> Packed:
        """The values back to back."""
        keep = np.zeros(len(self.buf) + 1, dtype=np.int8)
        np.add.at(keep, self.start[:-1], 1)
        np.add.at(keep, self.start[:-1] + self.length, -1)
        mask = np.cumsum(keep[:-1]).astype(bool)
        return Packed(_offsets(self.length), self.buf[mask])

    def b64url(self) -> Packed:
        """Every value as unpadded base64url text, back to back."""
        end = int(self.start[-1])
        chars = np.frombuffer(base64.urlsafe_b64encode(memoryview(self.buf[:end])), dtype=np.uint8)
        out_len = (4 * self.length + 2) // 3
        drop = 4 * (self.start[1:] - self.start[:-1]) // 3 - out_len  # padding characters per value: 0, 1 or 2
        if not drop.any():
            return Packed(_offsets(out_len), chars)
        keep = np.ones(len(chars), dtype=bool)
        tail = 4 * self.start[1:] // 3
        keep[tail[drop >= 1] - 1] = False
        keep[tail[drop == 2] - 2] = False
        return Packed(_offsets(out_len), chars[keep])


# ------------------------------------------------------------------ AES-SIV


def _dbl(block: bytes) -> bytes:
    """Doubling in GF(2^128) as CMAC and S2V define it (big-endian, reduction 0x87)."""
    v = int.from_bytes(block, "big") << 1
    if v >> 128:
        v = (v ^ 0x87) & ((1 << 128) - 1)
    return v.to_bytes(16, "big")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


class SivBatch:
    """AES-SIV (RFC 5297) encryption of many values under one key and one list of associated-data components.

    Parameters
    ----------
    key
        32, 48 or 64 bytes: the left half keys S2V (CMAC), the right half keys CTR.
    associated_data
        The S2V components before the plaintext (the same for every value of the batch).
    """

    __slots__ = ("_ad", "_ctr_key", "_last", "_mac_key", "_prev", "_siv")

    def __init__(self, key: bytes, associated_data: Sequence[bytes]) -> None:
        self._siv = AESSIV(key)  # validates the key size; also the per-value path
        self._ad = list(associated_data)
        half = len(key) // 2
        self._mac_key, self._ctr_key = key[:half], key[half:]
        # S2V up to the plaintext is the same for every value: D = dbl(...dbl(CMAC(0)) ^ CMAC(AD_1)...).
        d = _cmac(self._mac_key, _ZERO)
        for ad in self._ad:
            d = _xor(_dbl(d), _cmac(self._mac_key, ad))
        ecb = Cipher(algorithms.AES(self._mac_key), modes.ECB()).encryptor()  # noqa: S305 - CMAC subkey
        k1 = _dbl(ecb.update(_ZERO))
        k2 = _dbl(k1)
        # Everything XORed into the last CMAC block of T, by r = data bytes in that block (0..16):
        #   rows 0..16, plaintext >= 16 bytes: T = P xorend D puts the end of D in the block's first r bytes;
        #     r < 16 also pads (0x80 at r) and uses subkey K2, r = 16 is complete and uses K1;
        #   rows 17..33, plaintext < 16 bytes: T = dbl(D) xor pad(P), one complete block for CMAC (K1).
        # For r < 16 on long plaintexts the block before gets the start of D in its last 16 - r bytes.
        last, prev = [], []
        for r in range(17):
            pad = bytes(r) + (b"\x80" + bytes(15 - r) if r < 16 else b"")
            last.append(_xor(_xor(pad, bytes(16 - r) + d[16 - r :]), k1 if r == 16 else k2))
            prev.append(d[: 16 - r] + bytes(r))
        for r in range(17):
            pad = bytes(r) + (b"\x80" + bytes(15 - r) if r < 16 else b"")
            last.append(_xor(_xor(pad, _dbl(d)), k1))
        self._last = _table(last)
        self._prev = _table(prev)

    def encrypt(self, values: Packed) -> Packed:
        """``SIV(16) || ciphertext`` of every value, exactly as ``AESSIV.encrypt(value, associated_data)``."""
        return self._spread(values).packed()

    def encrypt_b64(self, values: Packed) -> Packed:
        """The same outputs as unpadded base64url text (what ``b64url_encode(encrypt(values))`` gives)."""
        return self._spread(values).b64url()

    def _spread(self, values: Packed) -> _Spread:
        lens = values.lengths
        out = _Spread.allocate(lens + 16)
        if len(values) == 0:
            return out
        tail = _long_tail(np.maximum((lens + 15) // 16, 1))
        if not tail.all():
            vec = np.flatnonzero(~tail)
            self._encrypt_into(values if len(vec) == len(values) else values.take(vec), out, out.start[vec])
        enc, ad = self._siv.encrypt, self._ad
        one = np.flatnonzero(tail)
        for i, v in zip(one.tolist(), values.take(one).to_list() if len(one) else [], strict=True):
            out.put(i, enc(v, ad))
        return out

    def _encrypt_into(self, values: Packed, out: _Spread, where: I64) -> None:
        n = len(values)
        lens = values.lengths
        nb = np.maximum((lens + 15) // 16, 1)  # blocks of T; an empty plaintext still makes one
        plain, start, rem = _data_blocks(values, nb)
        last = start + nb - 1

        # S2V's final string T with CMAC's last-block rules, for every value at once.
        t = plain.copy()
        _xor_at(t, last, self._last[rem + 17 * (lens < 16)])
        prev = (lens > 16) & (rem < 16)
        _xor_at(t, last[prev] - 1, self._prev[rem[prev]])

        # CMAC as CBC-MAC chains, round-parallel: round j encrypts block j of every value that has one.
        mac = _ecb(self._mac_key)
        order, active = _sorted_rounds(nb)
        first = start[order]
        x = np.zeros((n, 2), dtype=np.uint64)
        for j, c in enumerate(active):
            x[:c] = _u64(mac(_blk(_u64(t[first[:c] + j]) ^ x[:c])))
        siv = np.empty((n, 2), dtype=np.uint64)
        siv[order] = x

        # CTR from Q = V with bits 63 and 31 cleared; counter k is Q + k. Bit 63 being clear, the low 64-bit
        # half cannot carry into the high half, so adding to it alone is the RFC's 128-bit addition.
        q = siv.view(np.uint8).reshape(n, 16).copy()
        q[:, 8] &= 0x7F
        q[:, 12] &= 0x7F
        ctr = np.repeat(q, nb, axis=0).view(">u8")
        ctr[:, 1] += _runs(np.zeros(n, dtype=np.int64), nb, 1).astype(np.uint64)
        cipher = _blk(_u64(plain) ^ _u64(_ecb(self._ctr_key)(_blk(ctr))))
        cipher[last] = _blk(_u64(cipher[last]) & _u64(_MASK[rem]))

        # Ciphertext blocks first (the last may spill zeros into the next value's SIV slot), then the SIVs.
        _items(out.buf, 16, len(out.buf) - 15)[_runs(where + 16, nb, 16)] = cipher
        _items(out.buf, 16, len(out.buf) - 15)[where] = _blk(siv)


# ------------------------------------------------------------------ AES-GCM


def _gf_mul_x(v: int) -> int:
    """Multiply by x in GCM's bit-reflected GF(2^128) (NIST SP 800-38D, algorithm 1)."""
    return (v >> 1) ^ (0xE1 << 120) if v & 1 else v >> 1


def _ghash_tables(h: bytes) -> list[Blocks]:
    """``tables[p][b]`` = (the block with byte ``b`` at position ``p``, zeros elsewhere) * H.

    GHASH is linear, so a multiply by H is 16 table lookups and XORs, vectorized over values.
    """
    v = int.from_bytes(h, "big")
    powers = []
    for _ in range(128):  # powers[k] = H * x^k; bit k of a block is byte k // 8, mask 0x80 >> (k % 8)
        powers.append(v.to_bytes(16, "big"))
        v = _gf_mul_x(v)
    base = np.frombuffer(b"".join(powers), dtype=np.uint64).reshape(16, 8, 2)
    table = np.zeros((16, 256, 2), dtype=np.uint64)
    byte = np.arange(256)
    for s in range(8):
        has = (byte & (0x80 >> s)) != 0
        table[:, has] ^= base[:, s][:, None, :]
    return [_blk(table[p]) for p in range(16)]


def _gmul(tables: list[Blocks], y: U64) -> U64:
    """``y * H`` for every row of ``y`` ((n, 2) words holding each block's bytes in order)."""
    n = len(y)
    lanes = np.ascontiguousarray(y.view(np.uint8).reshape(n, 16).T)  # a contiguous index row per byte position
    acc: U64 = _u64(np.take(tables[0], lanes[0]))
    for p in range(1, 16):
        acc ^= _u64(np.take(tables[p], lanes[p]))
    return acc


class GcmBatch:
    """AES-GCM encryption of many values under one key and one associated data, a 12-byte nonce per value.

    Parameters
    ----------
    key
        16, 24 or 32 bytes of AES key.
    """

    __slots__ = ("_aead", "_key", "_tables")

    NONCE_SIZE = 12

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)  # validates the key size; also the per-value path
        self._key = key
        self._tables = _ghash_tables(_ecb(key)(_table([_ZERO])).tobytes())

    def _ghash_prefix(self, associated_data: bytes) -> U64:
        """GHASH state after the zero-padded associated data, the same for every value."""
        nblk = (len(associated_data) + 15) // 16
        words = np.frombuffer(associated_data + bytes(16 * nblk - len(associated_data)), dtype=np.uint64)
        y = np.zeros((1, 2), dtype=np.uint64)
        for j in range(nblk):
            y = _gmul(self._tables, y ^ words[2 * j : 2 * j + 2])
        return y

    def encrypt(self, nonces: bytes, values: Packed, associated_data: bytes) -> Packed:
        """``nonce(12) || ciphertext || tag(16)`` of every value, as ``nonce + AESGCM.encrypt(nonce, v, ad)``.

        ``nonces`` holds 12 bytes per value, in order (callers draw them from the OS in one call).
        """
        return self._spread(nonces, values, associated_data).packed()

    def encrypt_b64(self, nonces: bytes, values: Packed, associated_data: bytes) -> Packed:
        """The same outputs as unpadded base64url text."""
        return self._spread(nonces, values, associated_data).b64url()

    def _spread(self, nonces: bytes, values: Packed, associated_data: bytes) -> _Spread:
        n = len(values)
        if len(nonces) != self.NONCE_SIZE * n:
            raise ValueError(f"Expected {self.NONCE_SIZE * n} bytes of nonces for {n} values; got {len(nonces)}.")
        lens = values.lengths
        out = _Spread.allocate(lens + 28)
        if n == 0:
            return out
        nonce = np.frombuffer(nonces, dtype=np.uint8).reshape(n, 12)
        tail = _long_tail((lens + 15) // 16 + 1)
        if not tail.all():
            vec = np.flatnonzero(~tail)
            if len(vec) == n:
                self._encrypt_into(nonce, values, associated_data, out, out.start)
            else:
                self._encrypt_into(nonce[vec], values.take(vec), associated_data, out, out.start[vec])
        enc = self._aead.encrypt
        one = np.flatnonzero(tail)
        for i, v in zip(one.tolist(), values.take(one).to_list() if len(one) else [], strict=True):
            nb = nonces[i * 12 : (i + 1) * 12]
            out.put(i, nb + enc(nb, v, associated_data))
        return out

    def _encrypt_into(self, nonce: U8, values: Packed, associated_data: bytes, out: _Spread, where: I64) -> None:
        n = len(values)
        lens = values.lengths
        nd = (lens + 15) // 16  # data blocks
        plain, pstart, rem = _data_blocks(values, nd)
        has = nd > 0

        # Per value m = nd + 1 counter blocks: J0 = nonce || 1 (its encryption masks the tag), then
        # inc32(J0), ... for the data. The GHASH message has as many: C blocks, then the length block.
        m = nd + 1
        mstart = _offsets(m)[:-1]
        total = int(mstart[-1] + m[-1])
        ctr = np.empty((total, 16), dtype=np.uint8)
        ctr[:, :12] = np.repeat(nonce, m, axis=0)
        ctr[:, 12:] = _runs(np.ones(n, dtype=np.int64), m, 1).astype(">u4").view(np.uint8).reshape(total, 4)
        stream = _ecb(self._key)(_blk(ctr))
        data_rows = _runs(mstart + 1, nd, 1)
        cipher = _blk(_u64(plain) ^ _u64(stream[data_rows]))
        last = (pstart + nd - 1)[has]
        cipher[last] = _blk(_u64(cipher[last]) & _u64(_MASK[rem[has]]))  # GHASH sees C zero-padded

        lengths = np.empty((n, 2), dtype=">u8")
        lengths[:, 0] = len(associated_data) * 8
        lengths[:, 1] = lens * 8
        msg = np.empty(total, dtype="V16")
        msg[data_rows - 1] = cipher
        msg[mstart + nd] = _blk(lengths)
        words = _u64(msg)
        order, active = _sorted_rounds(m)
        first = mstart[order]
        y = np.repeat(self._ghash_prefix(associated_data), n, axis=0)
        tables = self._tables
        for j, c in enumerate(active):
            y[:c] = _gmul(tables, y[:c] ^ words[first[:c] + j])
        tag = np.empty((n, 2), dtype=np.uint64)
        tag[order] = y
        tag ^= _u64(stream[mstart])

        # nonce || C || tag; C blocks first: the last one's zero padding is then covered by the tag.
        _items(out.buf, 16, len(out.buf) - 15)[_runs(where + 12, nd, 16)] = cipher
        _items(out.buf, 16, len(out.buf) - 15)[where + 12 + lens] = _blk(tag)
        _items(out.buf, 12, len(out.buf) - 11)[where] = np.ascontiguousarray(nonce).view("V12").reshape(n)


# ------------------------------------------------------------------ base64url


def b64url_encode(values: Packed) -> Packed:
    """URL-safe base64 without padding of every value (as ``base64.urlsafe_b64encode(v).rstrip(b"=")``)."""
    out = _Spread.allocate(values.lengths)
    body = values.body()
    if len(body):
        lens = values.lengths
        pos = np.arange(len(body), dtype=np.int64) + np.repeat(out.start[:-1] - (values.offsets[:-1] - values.offsets[0]), lens)
        out.buf[pos] = body
    return out.b64url()
