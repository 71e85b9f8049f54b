"""Vectorized AES-SIV (RFC 5297), AES-GCM and base64url over a whole batch of values at once.

Byte-identical to ``cryptography``'s ``AESSIV``/``AESGCM``; a batch costs a few AES-ECB calls, not one per value.
"""

from __future__ import annotations

import base64
import itertools
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
# Values sharing one length take the dense path when at least this many do (its fixed cost is ~30 numpy calls).
MIN_GROUP = 256
_DENSE_ROWS = 8192
# Dense GCM multiplies each data block by its own power of H up to this many blocks (tables cached per key).
_POWERS_MAX = 8
_ZERO = bytes(16)


@dataclass(frozen=True, eq=False)
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
        return [raw[a:b] for a, b in itertools.pairwise(offs)]

    @property
    def lengths(self) -> I64:
        """Length of each value in bytes."""
        return np.diff(self.offsets)

    def body(self) -> U8:
        """The bytes of all values, back to back (a view)."""
        return self.data[int(self.offsets[0]) : int(self.offsets[-1])]

    def take(self, index: I64) -> Packed:
        """The values at ``index``, in that order."""
        lens = self.lengths[index]
        offsets = _offsets(lens)
        out = np.empty(int(offsets[-1]), dtype=np.uint8)
        _scatter(out, offsets[:-1], self.data, self.offsets[:-1][index], lens)
        return Packed(offsets, out)


# ------------------------------------------------------------------ layout helpers


def _offsets(lengths: I64) -> I64:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _scatter(dst: U8, dst_start: I64, src: U8, src_start: I64, lengths: I64) -> None:
    """Copy ``src[src_start[i]:][:lengths[i]]`` to ``dst[dst_start[i]:]`` for every ``i`` (byte by byte)."""
    total = int(lengths.sum())
    if total:
        pos = np.arange(total, dtype=np.int64) - np.repeat(_offsets(lengths)[:-1], lengths)
        dst[pos + np.repeat(dst_start, lengths)] = src[pos + np.repeat(src_start, lengths)]


def _by_length(lengths: I64) -> tuple[list[tuple[int, I64]], I64]:
    """Values grouped by exact length where a group has ``MIN_GROUP`` values or more, and the other values."""
    n = len(lengths)
    if n < MIN_GROUP:
        return [], np.arange(n, dtype=np.int64)
    key = lengths.astype(np.uint16) if int(lengths.max()) < 1 << 16 else lengths  # uint16 sorts by radix
    order = np.argsort(key, kind="stable").astype(np.int64)
    ordered = lengths[order]
    cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [n]])
    big = ends - starts >= MIN_GROUP
    groups = [(int(ordered[a]), order[a:b]) for a, b in zip(starts[big].tolist(), ends[big].tolist(), strict=True)]
    rest = order[np.repeat(~big, ends - starts)]
    return groups, rest


def _gather(values: Packed, index: I64, length: int) -> U8:
    """The values at ``index``, all ``length`` bytes long, as an (n, length) matrix."""
    if length == 0:
        return np.zeros((len(index), 0), dtype=np.uint8)
    base = int(values.offsets[0])
    rows = _items(values.data[base:], length)[values.offsets[:-1][index] - base]
    return np.ascontiguousarray(rows).view(np.uint8).reshape(len(index), length)


def _b64_rows(rows: U8, length: int) -> U8:
    """Unpadded base64url of the first ``length`` bytes of every row (rows are zero after that, width % 3 == 0)."""
    chars = np.frombuffer(base64.urlsafe_b64encode(rows.data), dtype=np.uint8).reshape(len(rows), -1)
    return np.ascontiguousarray(chars[:, : (4 * length + 2) // 3])


def _run_batch(
    values: Packed,
    overhead: int,
    dense: Callable[[U8, I64, int], U8],
    ragged: Callable[[I64], _Spread],
    *,
    b64: bool,
) -> Packed:
    """Outputs ``overhead`` bytes longer than their inputs, raw or as base64url, in input order.

    Values sharing a length with many others are processed as dense (n, length) matrices (no per-value
    bookkeeping at all); the rest go through the ragged path.
    """
    lens = values.lengths
    raw = lens + overhead
    final = (4 * raw + 2) // 3 if b64 else raw
    offsets = _offsets(final)
    buf = np.empty(int(offsets[-1]), dtype=np.uint8)
    groups, rest = _by_length(lens)
    for length, members in groups:
        width = length + overhead
        # Slices of a few thousand rows keep every temporary in cache (and off fresh, page-faulting memory).
        for s in range(0, len(members), _DENSE_ROWS):
            index = members[s : s + _DENSE_ROWS]
            rows = dense(_gather(values, index, length), index, -(-width // 3) * 3 if b64 else width)
            out = _b64_rows(rows, width) if b64 else rows
            _items(buf, out.shape[1])[offsets[:-1][index]] = out.view(np.dtype(f"V{out.shape[1]}")).reshape(-1)
    if len(rest):
        spread = ragged(rest)
        part = spread.b64url() if b64 else spread.packed()
        _scatter(buf, offsets[:-1][rest], part.data, part.offsets[:-1], part.lengths)
    return Packed(offsets, buf)


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


def _items(buf: U8, width: int) -> NDArray[Any]:
    """A writeable view whose item ``p`` is ``buf[p:p + width]`` as one ``V<width>`` item, for every ``p``.

    Items overlap; callers read or write items at positions that are at least ``width`` apart, or in an
    order where later writes are meant to cover earlier ones.
    """
    count = len(buf) - width + 1
    if count <= 0:
        raise ValueError(f"A buffer of {len(buf)} bytes has no {width}-byte items.")
    whole = buf[: len(buf) // width * width].view(np.dtype(f"V{width}"))
    # Stride 1 over a V<width> view: the last item ends at byte count - 1 + width - 1 = len(buf) - 1.
    return as_strided(whole, shape=(count,), strides=(1,), writeable=True)


def _u8(b: Blocks) -> U8:
    return b.view(np.uint8).reshape(len(b), 16)


def _u64(b: Blocks) -> U64:
    return b.view(np.uint64).reshape(len(b), 2)


def _blk(words: NDArray[Any]) -> Blocks:
    out: Blocks = np.ascontiguousarray(words).view("V16").reshape(-1)
    return out


def _table(rows: Sequence[bytes]) -> Blocks:
    return _blk(np.frombuffer(b"".join(rows), dtype=np.uint8))


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
    blocks: Blocks = np.ascontiguousarray(_items(src, 16)[_runs(rel, counts, 16)])
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


@dataclass(frozen=True, eq=False)
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
        return Packed(_offsets(self.length), _drop_tails(self.buf[: int(self.start[-1])], self.start, self.length))

    def b64url(self) -> Packed:
        """Every value as unpadded base64url text, back to back."""
        end = int(self.start[-1])
        chars = np.frombuffer(base64.urlsafe_b64encode(self.buf[:end].data), dtype=np.uint8)
        out_len = (4 * self.length + 2) // 3
        return Packed(_offsets(out_len), _drop_tails(chars, 4 * self.start // 3, out_len))


def _drop_tails(buf: U8, start: I64, keep: I64) -> U8:
    """The first ``keep[i]`` bytes of every region ``buf[start[i]:start[i + 1]]``, back to back.

    Regions are at most 2 bytes longer than what they keep (values padded to a multiple of 3).
    """
    drop = np.diff(start) - keep
    if not drop.any():
        return buf
    mask = np.ones(len(buf), dtype=bool)
    end = start[1:]
    mask[end[drop >= 1] - 1] = False
    mask[end[drop >= 2] - 2] = False
    out: U8 = buf[mask]
    return out


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
            last.append(_xor(_xor(pad, d[16 - r :] + bytes(16 - r)), k1 if r == 16 else k2))
            prev.append(bytes(r) + d[: 16 - r])
        for r in range(17):
            pad = bytes(r) + (b"\x80" + bytes(15 - r) if r < 16 else b"")
            last.append(_xor(_xor(pad, _dbl(d)), k1))
        self._last = _table(last)
        self._prev = _table(prev)

    def encrypt(self, values: Packed) -> Packed:
        """``SIV(16) || ciphertext`` of every value, exactly as ``AESSIV.encrypt(value, associated_data)``."""
        return _run_batch(values, 16, self._dense, lambda i: self._spread(values.take(i)), b64=False)

    def encrypt_b64(self, values: Packed) -> Packed:
        """The same outputs as unpadded base64url text (what ``b64url_encode(encrypt(values))`` gives)."""
        return _run_batch(values, 16, self._dense, lambda i: self._spread(values.take(i)), b64=True)

    def _tweak(self, length: int) -> U8:
        """What S2V and CMAC XOR into the padded plaintext of ``length`` bytes (the same for every such value)."""
        nb = max(1, -(-length // 16))
        tw = np.zeros(nb * 16, dtype=np.uint8)
        rem = length - 16 * (nb - 1)
        tw[-16:] = _u8(self._last[rem + 17 * (length < 16) : rem + 17 * (length < 16) + 1])[0]
        if length > 16 and rem < 16:
            tw[-32:-16] = _u8(self._prev[rem : rem + 1])[0]
        return tw

    def _dense(self, plain: U8, _index: I64, width: int) -> U8:
        """``SIV || ciphertext`` rows for an (n, length) matrix of plaintexts, zero-padded to ``width``."""
        n, length = plain.shape
        nb = max(1, -(-length // 16))
        t = np.zeros((n, nb * 16), dtype=np.uint8)
        t[:, :length] = plain
        t ^= self._tweak(length)
        words = t.view(np.uint64).reshape(n, nb, 2)
        mac = _ecb(self._mac_key)
        x = np.zeros((n, 2), dtype=np.uint64)
        for j in range(nb):
            x = _u64(mac(_blk(words[:, j] ^ x)))
        out = np.zeros((n, width), dtype=np.uint8)
        out[:, :16] = x.view(np.uint8).reshape(n, 16)
        nd = -(-length // 16)
        if nd:
            q = out[:, :16].copy()
            q[:, 8] &= 0x7F
            q[:, 12] &= 0x7F
            ctr = np.repeat(q[:, None, :], nd, axis=1).view(">u8")
            ctr[:, :, 1] += np.arange(nd, dtype=np.uint64)
            stream = _u8(_ecb(self._ctr_key)(_blk(ctr))).reshape(n, nd * 16)
            out[:, 16 : 16 + length] = plain ^ stream[:, :length]
        return out

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
        _items(out.buf, 16)[_runs(where + 16, nb, 16)] = cipher
        _items(out.buf, 16)[where] = _blk(siv)


# ------------------------------------------------------------------ AES-GCM


def _gf_mul_x(v: int) -> int:
    """Multiply by x in GCM's bit-reflected GF(2^128) (NIST SP 800-38D, algorithm 1)."""
    return (v >> 1) ^ (0xE1 << 120) if v & 1 else v >> 1


def _gf_mul(a: int, b: int) -> int:
    """``a * b`` in GCM's GF(2^128), blocks as big-endian integers (for per-key setup only)."""
    z = 0
    for i in range(128):
        if (a >> (127 - i)) & 1:
            z ^= b
        b = _gf_mul_x(b)
    return z


def _ghash_tables(h: int) -> list[Blocks]:
    """``tables[p][b]`` = (the block with byte ``b`` at position ``p``, zeros elsewhere) * h.

    GHASH is linear, so a multiply by a fixed element is 16 table lookups and XORs, vectorized over values.
    """
    v = h
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
    part = np.empty(n, dtype="V16")  # reused: fresh arrays per lookup cost more than the lookups
    for p in range(1, 16):
        np.take(tables[p], lanes[p], out=part)
        acc ^= _u64(part)
    return acc


class GcmBatch:
    """AES-GCM encryption of many values under one key and one associated data, a 12-byte nonce per value.

    Parameters
    ----------
    key
        16, 24 or 32 bytes of AES key.
    """

    __slots__ = ("_aead", "_h", "_key", "_powers", "_tables")

    NONCE_SIZE = 12

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)  # validates the key size; also the per-value path
        self._key = key
        self._h = int.from_bytes(_ecb(key)(_table([_ZERO])).tobytes(), "big")
        self._tables = _ghash_tables(self._h)
        self._powers: dict[int, list[Blocks]] = {1: self._tables}

    def _power(self, k: int) -> list[Blocks]:
        """Multiplication tables for H^k (built once per key and power, 64 KiB each)."""
        if k not in self._powers:
            hk = self._h
            for _ in range(k - 1):
                hk = _gf_mul(hk, self._h)
            self._powers[k] = _ghash_tables(hk)
        return self._powers[k]

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
        return self._run(nonces, values, associated_data, b64=False)

    def encrypt_b64(self, nonces: bytes, values: Packed, associated_data: bytes) -> Packed:
        """The same outputs as unpadded base64url text."""
        return self._run(nonces, values, associated_data, b64=True)

    def _run(self, nonces: bytes, values: Packed, associated_data: bytes, *, b64: bool) -> Packed:
        n = len(values)
        if len(nonces) != self.NONCE_SIZE * n:
            raise ValueError(f"Expected {self.NONCE_SIZE * n} bytes of nonces for {n} values; got {len(nonces)}.")
        nonce = np.frombuffer(nonces, dtype=np.uint8).reshape(n, 12)
        prefix = self._ghash_prefix(associated_data)
        alen = len(associated_data) * 8
        consts: dict[int, U64] = {}

        def dense(plain: U8, index: I64, width: int) -> U8:
            length = plain.shape[1]
            if length not in consts:
                # GHASH of zero data blocks and this length block: what every such value's tag starts from
                y = prefix
                for _ in range(-(-length // 16)):
                    y = _gmul(self._tables, y)
                consts[length] = _gmul(self._tables, y ^ np.array([alen, length * 8], dtype=">u8").view(np.uint64))
            return self._dense(plain, nonce[index], consts[length], width)

        def ragged(index: I64) -> _Spread:
            return self._spread(nonce[index].tobytes(), values.take(index), associated_data)

        return _run_batch(values, 28, dense, ragged, b64=b64)

    def _dense(self, plain: U8, nonce: U8, const: U64, width: int) -> U8:
        """``nonce || ciphertext || tag`` rows for an (n, length) matrix of plaintexts, zero-padded to ``width``.

        GHASH is linear: with data blocks C_1..C_d, the tag is E(K, J0) ^ const ^ sum of C_j * H^(d + 2 - j),
        ``const`` covering the associated data and the length block. The products are independent, one table
        pass each, instead of a chain of d + 1 dependent multiplications.
        """
        n, length = plain.shape
        nd = -(-length // 16)
        head = np.zeros((n, 4), dtype=np.uint32)
        head[:, :3] = nonce.view(np.uint32)
        ctr = np.repeat(head.view("V16"), nd + 1).view(np.uint32).reshape(n, nd + 1, 4)
        ctr[:, :, 3] = np.arange(1, nd + 2, dtype=">u4").view(np.uint32)
        stream = _u8(_ecb(self._key)(_blk(ctr))).reshape(n, (nd + 1) * 16)
        out = np.zeros((n, width), dtype=np.uint8)
        out[:, :12] = nonce
        cipher = out[:, 12 : 12 + length]
        np.bitwise_xor(plain, stream[:, 16 : 16 + length], out=cipher)
        padded = np.zeros((n, nd * 16), dtype=np.uint8)
        padded[:, :length] = cipher
        words = padded.view(np.uint64).reshape(n, nd, 2)
        y = stream[:, :16].copy().view(np.uint64) ^ const
        if nd < _POWERS_MAX:
            for j in range(nd):
                y ^= _gmul(self._power(nd + 1 - j), np.ascontiguousarray(words[:, j]))
        else:  # long values: the usual chain (the same count of multiplications, no tables per power)
            z = np.zeros((n, 2), dtype=np.uint64)
            for j in range(nd):
                z = _gmul(self._tables, z ^ words[:, j])
            y ^= _gmul(self._tables, z)
        out[:, 12 + length : 28 + length] = y.view(np.uint8).reshape(n, 16)
        return out

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
                self._encrypt_into(nonce, values, associated_data, out, out.start[:-1])
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
        order, active = _sorted_rounds(m)
        first = mstart[order]
        y = np.repeat(self._ghash_prefix(associated_data), n, axis=0)
        tables = self._tables
        for j, c in enumerate(active):
            y[:c] = _gmul(tables, y[:c] ^ _u64(msg[first[:c] + j]))
        tag = np.empty((n, 2), dtype=np.uint64)
        tag[order] = y
        tag ^= _u64(stream[mstart])

        # nonce || C || tag; C blocks first: the last one's zero padding is then covered by the tag.
        _items(out.buf, 16)[_runs(where + 12, nd, 16)] = cipher
        _items(out.buf, 16)[where + 12 + lens] = _blk(tag)
        _items(out.buf, 12)[where] = np.ascontiguousarray(nonce).view("V12").reshape(n)


# ------------------------------------------------------------------ base64url


def b64url_encode(values: Packed) -> Packed:
    """URL-safe base64 without padding of every value (as ``base64.urlsafe_b64encode(v).rstrip(b"=")``)."""
    lens = values.lengths
    out = _Spread.allocate(lens)
    body = values.body()
    shift = out.start[:-1] - (values.offsets[:-1] - values.offsets[0])
    out.buf[np.arange(len(body), dtype=np.int64) + np.repeat(shift, lens)] = body
    return out.b64url()
