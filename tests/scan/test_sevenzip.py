"""The built-in 7z reader: py7zr-written archives read back, hostile headers, fuzzing, and the fallback."""

from __future__ import annotations

import io
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import py7zr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py7zr.properties import FILTER_DEFLATE64

from bastion.scan import ScanLimits, Severity, scan_bytes
from bastion.scan._sevenzip import SevenZipArchive, SevenZipCorrupt, SevenZipError, SevenZipUnsupported
from bastion.scan.interface import LimitExceeded

from .fresh import scan_in_fresh_interpreter

EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."
SIG = b"7z\xbc\xaf\x27\x1c"

FILTERS: dict[str, list[dict[str, int]]] = {
    "copy": [{"id": py7zr.FILTER_COPY}],
    "lzma": [{"id": py7zr.FILTER_LZMA}],
    "lzma2": [{"id": py7zr.FILTER_LZMA2, "preset": 7}],
    "deflate": [{"id": py7zr.FILTER_DEFLATE}],
    "bzip2": [{"id": py7zr.FILTER_BZIP2}],
    # filter chains liblzma decodes in front of LZMA2; BCJ x86 + LZMA2 is py7zr's default
    "bcj+lzma2": [{"id": py7zr.FILTER_X86}, {"id": py7zr.FILTER_LZMA2, "preset": 7}],
    "arm+lzma2": [{"id": py7zr.FILTER_ARM}, {"id": py7zr.FILTER_LZMA2, "preset": 7}],
    "delta+lzma2": [{"id": py7zr.FILTER_DELTA, "dist": 4}, {"id": py7zr.FILTER_LZMA2, "preset": 7}],
}
UNSUPPORTED: dict[str, list[dict[str, int]]] = {
    "bcj+lzma": [{"id": py7zr.FILTER_X86}, {"id": py7zr.FILTER_LZMA}],
    "bcj+deflate": [{"id": py7zr.FILTER_X86}, {"id": py7zr.FILTER_DEFLATE}],
    "ppmd": [{"id": py7zr.FILTER_PPMD}],
    "deflate64": [{"id": FILTER_DEFLATE64}],
    "brotli": [{"id": py7zr.FILTER_BROTLI}],
}


def _py7z(entries: list[tuple[str, bytes]], filters: list[dict[str, int]] | None = None, *,
          encoded: bool = True, **kw: object) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", filters=filters, **kw) as z:  # type: ignore[arg-type]
        z.set_encoded_header_mode(encoded)
        for name, data in entries:
            z.writestr(data, name)
    return buf.getvalue()


def _read_all(data: bytes, **kw: int) -> dict[str, bytes | None]:
    archive = SevenZipArchive(io.BytesIO(data), max_members=kw.get("max_members", 1000),
                              max_header_bytes=kw.get("max_header_bytes", 1 << 20))
    out: dict[str, bytes | None] = {}
    for member, raw in archive.iter_members():
        out[member.name] = None if raw is None else raw.read()
    assert archive.crc_failures == []
    return out


def _rules(data: bytes, **kw: object) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in scan_bytes(data, **kw).findings:  # type: ignore[arg-type]
        out[f.rule_id] = max(out.get(f.rule_id, f.severity), f.severity)
    return out


# -- hand-made archives (for headers py7zr never writes) -------------------------------------------


def _num(v: int) -> bytes:
    """7z NUMBER encoding."""
    for i in range(8):
        if v < 1 << (8 * i + 7 - i):
            first = ((0xFF << (8 - i)) & 0xFF) | (v >> (8 * i))
            return bytes([first]) + (v & ((1 << (8 * i)) - 1)).to_bytes(i, "little")
    return b"\xff" + v.to_bytes(8, "little")


def _bits(flags: list[bool]) -> bytes:
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i >> 3] |= 0x80 >> (i & 7)
    return bytes(out)


def _wrap(packed: bytes, header: bytes) -> bytes:
    start = struct.pack("<QQI", len(packed), len(header), zlib.crc32(header))
    return SIG + b"\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start + packed + header


def _handmade(files: list[tuple[str, bytes]], *, coder: bytes = b"\x00", props: bytes = b"",
              packed: bytes | None = None, unpack_size: int | None = None, pack_size: int | None = None,
              num_files: int | None = None, crcs: list[int] | None = None,
              no_data: tuple[tuple[str, bool], ...] = (), attrs: list[int] | None = None) -> bytes:
    """One folder holding ``files`` (``packed`` = their coded bytes; default: stored).

    ``no_data`` adds entries without a stream after them: ``(name, is_empty_file)`` (else a directory).
    """
    plain = b"".join(d for _, d in files)
    packed = plain if packed is None else packed
    h = b"\x01\x04\x06" + _num(0) + _num(1) + b"\x09" + _num(len(packed) if pack_size is None else pack_size) + b"\x00"
    h += b"\x07\x0b" + _num(1) + b"\x00" + _num(1) + bytes([len(coder) | (0x20 if props else 0)]) + coder
    h += (_num(len(props)) + props if props else b"")
    h += b"\x0c" + _num(len(plain) if unpack_size is None else unpack_size) + b"\x00"
    h += b"\x08\x0d" + _num(len(files)) + b"\x09" + b"".join(_num(len(d)) for _, d in files[:-1])
    digests = crcs if crcs is not None else [zlib.crc32(d) for _, d in files]
    h += b"\x0a\x01" + b"".join(struct.pack("<I", c) for c in digests) + b"\x00\x00"
    names = b"\x00" + "".join(n + "\0" for n, _ in [*files, *no_data]).encode("utf-16-le")
    h += b"\x05" + _num(len(files) + len(no_data) if num_files is None else num_files)
    if no_data:
        empty_stream = _bits([False] * len(files) + [True] * len(no_data))
        empty_file = _bits([is_file for _, is_file in no_data])
        h += b"\x0e" + _num(len(empty_stream)) + empty_stream + b"\x0f" + _num(len(empty_file)) + empty_file
    h += b"\x11" + _num(len(names)) + names
    if attrs is not None:
        body = b"\x01\x00" + struct.pack(f"<{len(attrs)}I", *attrs)
        h += b"\x15" + _num(len(body)) + body
    return _wrap(packed, h + b"\x00\x00")


# -- reading back what py7zr writes ----------------------------------------------------------------

CONTENT = [("a.txt", b"hello " * 1000), ("dir/sub/b.bin", bytes(range(256)) * 300), ("zero", b""),
           ("c", b"x"), ("deep/er/model.pkl", EVIL)]


@pytest.mark.parametrize("encoded", [True, False], ids=["encoded-header", "plain-header"])
@pytest.mark.parametrize("kind", sorted(FILTERS))
def test_reads_back_what_py7zr_writes(kind: str, encoded: bool) -> None:
    data = _py7z(CONTENT, FILTERS[kind], encoded=encoded)
    got = _read_all(data)
    assert got == dict(CONTENT)


def test_empty_files_and_directories(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d1" / "d2").mkdir(parents=True)
    (src / "d1" / "empty.bin").write_bytes(b"")
    (src / "d1" / "d2" / "m.pkl").write_bytes(EVIL)
    out = tmp_path / "a.7z"
    with py7zr.SevenZipFile(out, "w") as z:
        z.writeall(src, "src")
    archive = SevenZipArchive(io.BytesIO(out.read_bytes()), max_members=100, max_header_bytes=1 << 20)
    kinds = {m.name: (m.is_dir, m.has_data, m.size) for m in archive.members}
    assert kinds["src/d1"] == (True, False, 0)
    assert kinds["src/d1/d2"] == (True, False, 0)
    assert kinds["src/d1/empty.bin"][::2] == (False, 0)  # py7zr stores it as a zero-length stream
    assert kinds["src/d1/d2/m.pkl"] == (False, True, len(EVIL))
    assert _read_all(out.read_bytes())["src/d1/d2/m.pkl"] == EVIL
    assert _rules(out.read_bytes())["pickle.dangerous-global"] == Severity.CRITICAL


def test_py7zr_default_filters_are_built_in() -> None:
    data = _py7z(CONTENT)  # BCJ x86 + LZMA2, what the corpus generator and most py7zr users write
    assert _read_all(data) == dict(CONTENT)


def test_empty_archive() -> None:
    assert _read_all(_py7z([])) == {}
    assert _rules(_py7z([])) == {}


def test_handmade_solid_copy_folder() -> None:
    files = [("a", b"first"), ("b", b""), ("c", b"third member")]
    assert _read_all(_handmade(files)) == dict(files)


def test_entries_without_data() -> None:
    data = _handmade([("d/m.pkl", EVIL)], no_data=(("d", False), ("d/empty", True), ("e/f", False)))
    archive = SevenZipArchive(io.BytesIO(data), max_members=10, max_header_bytes=1 << 20)
    assert [(m.name, m.is_dir, m.has_data) for m in archive.members] == [
        ("d/m.pkl", False, True), ("d", True, False), ("d/empty", False, False), ("e/f", True, False)]
    assert _read_all(data) == {"d/m.pkl": EVIL, "d": None, "d/empty": None, "e/f": None}
    assert _rules(data) == {"pickle.dangerous-global": Severity.CRITICAL}


names = st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_characters="/\\:.*?\"<>|"),
                         min_size=1, max_size=12), min_size=1, max_size=3).map("/".join)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.dictionaries(names, st.binary(max_size=3000), min_size=1, max_size=5),
       kind=st.sampled_from(sorted(FILTERS)), encoded=st.booleans())
def test_round_trip(entries: dict[str, bytes], kind: str, encoded: bool) -> None:
    lowered = {k.lower() for k in entries}
    if len(lowered) != len(entries):
        return  # names differing only in case are one file to some extractors; not what this checks
    data = _py7z(list(entries.items()), FILTERS[kind], encoded=encoded)
    assert _read_all(data) == entries


# -- hostile and damaged archives ------------------------------------------------------------------

BASES = [_py7z(CONTENT[:2], FILTERS["lzma2"]), _py7z(CONTENT, FILTERS["copy"], encoded=False),
         _py7z(CONTENT, FILTERS["deflate"], encoded=False), _py7z(CONTENT[:3], FILTERS["bzip2"], encoded=False),
         _py7z(CONTENT, FILTERS["lzma"], encoded=False), _handmade([("a", b"x" * 100), ("b", EVIL)])]


def _recrc(data: bytearray) -> bytes:
    """Fix both header CRCs after a mutation, so the parser (not the CRC check) meets the damage."""
    if len(data) >= 32:
        offset, size = struct.unpack("<QQ", data[12:28])
        start = 32 + offset
        if start + size <= len(data):
            data[28:32] = struct.pack("<I", zlib.crc32(bytes(data[start : start + size])))
        data[8:12] = struct.pack("<I", zlib.crc32(bytes(data[12:32])))
    return bytes(data)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(range(len(BASES))),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4),
       cut=st.none() | st.floats(0, 1), tail=st.booleans(), fix=st.booleans())
def test_mutations_end_in_a_clean_error(base: int, flips: list[tuple[float, int]], cut: float | None,
                                        tail: bool, fix: bool) -> None:
    data = bytearray(BASES[base])
    header_at = 32 + struct.unpack("<Q", data[12:20])[0]
    for where, value in flips:
        # half the flips land in the header, where the parser works; the rest anywhere
        lo = header_at if tail else 0
        data[lo + int(where * (len(data) - lo))] = value
    if cut is not None:
        del data[int(cut * len(data)):]
    mutated = _recrc(data) if fix else bytes(data)
    started = time.monotonic()
    try:
        _read_all_lenient(mutated)
    except (SevenZipError, LimitExceeded):
        pass
    found = scan_bytes(mutated).findings
    assert time.monotonic() - started < 10
    assert not any(f.rule_id in ("scan.internal-error", "format.corrupt") and f.inner_path is None for f in found)
    original = BASES[base]
    changed = {i for i in range(min(len(mutated), len(original))) if mutated[i] != original[i]}
    if mutated[:6] == SIG and not fix and (len(mutated) != len(original) or changed - {7}):  # byte 7: no CRC
        assert found, "a damaged 7z is never clean"


def _read_all_lenient(data: bytes) -> None:
    archive = SevenZipArchive(io.BytesIO(data), max_members=1000, max_header_bytes=1 << 20)
    for _member, raw in archive.iter_members():
        if raw is not None:
            raw.read()


def test_header_crc_mismatch_is_corrupt() -> None:
    data = bytearray(_py7z(CONTENT, FILTERS["copy"], encoded=False))
    data[-3] ^= 0xFF
    with pytest.raises(SevenZipCorrupt, match="CRC"):
        _read_all(bytes(data))
    assert _rules(bytes(data)) == {"archive.corrupt": Severity.HIGH}


def _coded(kind: str, plain: bytes) -> tuple[bytes, bytes, bytes]:
    """(coder id, properties, packed bytes) for ``plain`` under one of the built-in coders."""
    import bz2
    import lzma

    if kind == "copy":
        return b"\x00", b"", plain
    if kind == "deflate":
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        return b"\x04\x01\x08", b"", z.compress(plain) + z.flush()
    if kind == "bzip2":
        return b"\x04\x02\x02", b"", bz2.compress(plain)
    packed = lzma.compress(plain, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 1}])
    return b"\x21", b"\x10", packed  # dictionary 64 KiB


@pytest.mark.parametrize("kind", ["copy", "deflate", "bzip2", "lzma2"])
@pytest.mark.parametrize("wrong", [0, 1])
def test_data_crc_mismatch_is_a_finding(kind: str, wrong: int) -> None:
    files = [("a.txt", b"harmless text " * 10), ("b.txt", b"more")]
    coder, props, packed = _coded(kind, b"".join(d for _, d in files))
    crcs = [zlib.crc32(d) for _, d in files]
    crcs[wrong] ^= 1
    good = _handmade(files, coder=coder, props=props, packed=packed)
    assert _read_all(good) == dict(files)
    found = scan_bytes(_handmade(files, coder=coder, props=props, packed=packed, crcs=crcs)).findings
    assert [(f.rule_id, f.severity, f.construct) for f in found] == [
        ("archive.bad-crc", Severity.HIGH, f"7z member {files[wrong][0]!r}")]


def test_flipped_data_byte_in_stored_archive_is_bad_crc() -> None:
    data = bytearray(_py7z([("notes.txt", b"plain words " * 50)], FILTERS["copy"], encoded=False))
    data[40] ^= 0x01  # inside the stored member's bytes; the header CRC still holds
    assert _rules(bytes(data)) == {"archive.bad-crc": Severity.HIGH}


@pytest.mark.parametrize(
    ("kw", "rule"),
    [
        ({"unpack_size": 2**40, "coder": b"\x21", "props": b"\x18"}, "limit.size"),  # 1 TiB from a few bytes
        ({"unpack_size": 2**63, "coder": b"\x21", "props": b"\x18"}, "limit.size"),
        ({"num_files": 10**9}, "limit.members"),
        ({"num_files": 2**64 - 1}, "limit.members"),
        ({"pack_size": 2**62}, "archive.corrupt"),  # packed stream past the end of the file
        ({"unpack_size": 10**6}, "archive.corrupt"),  # stored folder larger than its packed bytes
        ({"num_files": 3}, "archive.corrupt"),  # more files than streams and names
        ({"coder": b"\x03\x01\x01", "props": b"\xff\x00\x00\x01\x00"}, "archive.corrupt"),  # bad LZMA props
        ({"coder": b"\x21", "props": b"\x29"}, "archive.corrupt"),  # LZMA2 dictionary byte > 40
    ],
)
def test_hostile_headers(kw: dict[str, object], rule: str) -> None:
    data = _handmade([("a", b"payload"), ("b", EVIL)], **kw)  # type: ignore[arg-type]
    assert _rules(data)[rule] == Severity.HIGH


def test_huge_dictionary_is_not_allocated() -> None:
    # LZMA2 properties byte 40 declares a 4 GiB dictionary; the reader clamps it to the folder's size
    body = b"model weights " * 100
    _coder, _props, packed = _coded("lzma2", body)
    data = _handmade([("w.bin", body)], coder=b"\x21", props=b"\x28", packed=packed)
    assert _read_all(data) == {"w.bin": body}


def test_path_traversal_names_are_findings() -> None:
    # py7zr refuses to write such names; other tools do not
    data = _handmade([("../escape.pkl", EVIL), ("/etc/cron.d/x", b"x"), ("ok.txt", b"fine")])
    found = scan_bytes(data).findings
    traversal = sorted(f.construct for f in found if f.rule_id == "archive.path-traversal")
    assert traversal == ["7z member '../escape.pkl'", "7z member '/etc/cron.d/x'"]
    assert {f.severity for f in found if f.rule_id == "archive.path-traversal"} == {Severity.HIGH}


def test_symbolic_links_are_findings() -> None:
    link = 0x8000 | (0o120777 << 16)  # Unix-extension attributes: mode in the high 16 bits
    data = _handmade([("ln", b"../../etc/passwd"), ("f.txt", b"text")], attrs=[link, 0x8000 | (0o100644 << 16)])
    found = scan_bytes(data).findings
    assert [(f.rule_id, f.severity, f.construct) for f in found] == [
        ("archive.link", Severity.HIGH, "7z member 'ln'")]


def test_duplicate_names_are_findings() -> None:
    data = _handmade([("model.pkl", b"benign"), ("model.pkl", EVIL)])
    found = _rules(data)
    assert found["archive.duplicate-member"] == Severity.HIGH
    assert found["pickle.dangerous-global"] == Severity.CRITICAL


@pytest.mark.parametrize(
    ("limits", "rule"),
    [
        (ScanLimits(max_members=3), "limit.members"),
        (ScanLimits(max_expanded_bytes=1000), "limit.size"),
        (ScanLimits(ratio_floor_bytes=1000, max_ratio=2.0), "limit.ratio"),
    ],
)
def test_limits(limits: ScanLimits, rule: str) -> None:
    data = _py7z([(f"f{i}", b"\0" * 20_000) for i in range(5)], FILTERS["lzma2"])
    found = _rules(data, limits=limits)
    assert found[rule] == Severity.HIGH


def test_depth_limit_counts_7z_levels() -> None:
    data = EVIL
    for i in range(4):
        data = _py7z([(f"level{i}", data)], FILTERS["lzma2"])
    assert _rules(data, limits=ScanLimits(max_depth=2))["limit.depth"] == Severity.HIGH
    assert _rules(data)["pickle.dangerous-global"] == Severity.CRITICAL


def test_truncated_data_is_corrupt_not_clean() -> None:
    data = bytearray(_py7z([("big.bin", bytes(range(256)) * 400), ("m.pkl", EVIL)], FILTERS["lzma2"],
                           encoded=False))
    data[40:200] = bytes(160)  # zero a stretch of the LZMA2 stream
    found = _rules(_recrc(data))
    assert max(found.values()) >= Severity.HIGH
    assert "scan.internal-error" not in found


# -- unsupported coders: py7zr fallback, or the HIGH finding without it -----------------------------


@pytest.mark.parametrize("kind", sorted(UNSUPPORTED))
def test_unsupported_coders_fall_back_to_py7zr(kind: str) -> None:
    data = _py7z([("model.pkl", EVIL)], UNSUPPORTED[kind])
    with pytest.raises(SevenZipUnsupported):
        SevenZipArchive(io.BytesIO(data), max_members=10, max_header_bytes=1 << 20)
    assert _rules(data) == {"pickle.dangerous-global": Severity.CRITICAL}


def test_the_py7zr_fallback_applies_the_ratio_limit_before_extracting(monkeypatch: pytest.MonkeyPatch) -> None:
    """An archive the built-in reader hands to py7zr (here PPMd) is extracted to disk in one call: a bomb
    must be refused from its declared sizes first, as the built-in reader does per folder."""
    data = _py7z([(f"f{i}", b"\0" * 20_000) for i in range(5)] + [("m.pkl", EVIL)], UNSUPPORTED["ppmd"])
    extracted: list[object] = []
    monkeypatch.setattr(py7zr.SevenZipFile, "extract", lambda self, **kw: extracted.append(kw))
    found = _rules(data, limits=ScanLimits(ratio_floor_bytes=1000, max_ratio=2.0))
    assert found == {"limit.ratio": Severity.HIGH} and extracted == []
    monkeypatch.undo()
    assert _rules(data) == {"pickle.dangerous-global": Severity.CRITICAL}  # within the limits: analysed


@pytest.mark.parametrize("kind", sorted(UNSUPPORTED))
def test_unsupported_without_py7zr_is_high(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _py7z([("model.pkl", EVIL)], UNSUPPORTED[kind])
    monkeypatch.setitem(sys.modules, "py7zr", None)  # import fails as if the package were missing
    found = scan_bytes(data).findings
    assert [(f.rule_id, f.severity) for f in found] == [("archive.unsupported", Severity.HIGH)]
    assert "not installed" in found[0].message


@pytest.mark.parametrize("header_encryption", [False, True])
def test_encrypted_archive_is_high(header_encryption: bool) -> None:
    filters = [{"id": py7zr.FILTER_LZMA2, "preset": 7}, {"id": py7zr.FILTER_CRYPTO_AES256_SHA256}]
    data = _py7z([("model.pkl", EVIL)], filters, password="secret", header_encryption=header_encryption)
    assert _rules(data) == {"archive.encrypted": Severity.HIGH}


def test_builtin_reader_flags_malicious_pickle_without_py7zr(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _py7z([("weights/model.pkl", EVIL), ("README", b"docs")], FILTERS["lzma2"])
    monkeypatch.setitem(sys.modules, "py7zr", None)
    found = scan_bytes(data).findings
    assert [(f.rule_id, f.inner_path) for f in found] == [("pickle.dangerous-global", "weights/model.pkl")]


def test_garbage_after_signature_is_corrupt_without_py7zr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "py7zr", None)
    assert _rules(SIG + b"\0" * 30) == {"archive.corrupt": Severity.HIGH}


def test_corpus_7z_scan_does_not_import_py7zr(scan_corpus: Any) -> None:
    (path,) = Path(scan_corpus.root).rglob("model.7z")
    out, _ = scan_in_fresh_interpreter(path)
    py7zr_family = {"py7zr", "Cryptodome", "multivolumefile", "bcj", "pyppmd"}
    assert [m for m in out["new"] if m.split(".")[0] in py7zr_family] == []
    assert out["rules"] == ["pickle.dangerous-global"]
