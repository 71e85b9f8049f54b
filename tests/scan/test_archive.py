"""Archives and compressed streams: recursion, zip/tar oddities, traversal, and bomb limits."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import sys
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

import lz4.frame
import pytest

from bastion.scan import ScanLimits, Severity, scan_bytes, scan_path
from bastion.scan.archive import normalize_member_name, unsafe_member_name

EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."
BENIGN = pickle.dumps({"weights": [1.0, 2.0]}, protocol=4)


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def _rules(data: bytes, **kw: object) -> dict[str, Severity]:
    out: dict[str, Severity] = {}
    for f in scan_bytes(data, **kw).findings:  # type: ignore[arg-type]
        out[f.rule_id] = max(out.get(f.rule_id, f.severity), f.severity)
    return out


COMPRESSORS = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zlib": zlib.compress,
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_pickle_is_analysed(kind: str) -> None:
    report = scan_bytes(COMPRESSORS[kind](EVIL))
    assert report.max_severity == Severity.CRITICAL
    assert report.files[0].format == f"{kind}+pickle"
    assert report.findings[0].inner_path == f"({kind})"


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_benign_is_clean(kind: str) -> None:
    assert scan_bytes(COMPRESSORS[kind](BENIGN)).findings == ()


def test_nested_pickle_in_targz_in_zip() -> None:
    inner = gzip.compress(_tar([("model/model.sav", EVIL)]))
    outer = _zip({"bundle/inner.tar.gz": inner, "README.md": b"hello"})
    report = scan_bytes(outer, name="outer.zip")
    (finding,) = report.findings
    assert finding.severity == Severity.CRITICAL
    assert finding.inner_path == "bundle/inner.tar.gz!(gzip)!model/model.sav"


def test_benign_zip_and_tar_are_clean() -> None:
    assert scan_bytes(_zip({"a.pkl": BENIGN, "notes.txt": b"x"})).findings == ()
    assert scan_bytes(_tar([("a.pkl", BENIGN)])).findings == ()


@pytest.mark.parametrize(
    ("name", "unsafe"),
    [("a/b.pkl", False), ("../evil.pkl", True), ("/etc/passwd", True), ("a/../../x", True), ("C:/x", True),
     ("..\\x", True), ("ok..name", False), ("", True)],
)
def test_unsafe_member_names(name: str, unsafe: bool) -> None:
    assert (unsafe_member_name(name) is not None) is unsafe


def test_zip_slip_is_high() -> None:
    assert _rules(_zip({"../../evil.txt": b"x"}))["archive.path-traversal"] == Severity.HIGH


def test_tar_slip_and_links_are_high() -> None:
    link = tarfile.TarInfo("model/link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    found = _rules(_tar([("../x.pkl", BENIGN), link, dev]))
    assert found["archive.path-traversal"] == Severity.HIGH
    assert found["archive.link"] == Severity.HIGH
    assert found["archive.special-file"] == Severity.HIGH


def test_tar_inner_link_is_medium() -> None:
    link = tarfile.TarInfo("model/alias.pkl")
    link.type = tarfile.SYMTYPE
    link.linkname = "real.pkl"
    assert _rules(_tar([("model/real.pkl", BENIGN), link]))["archive.link"] == Severity.MEDIUM


def test_zip_duplicate_names_are_high() -> None:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("data.pkl", BENIGN)
            zf.writestr("data.pkl", EVIL)
    found = _rules(buf.getvalue())
    assert found["archive.duplicate-member"] == Severity.HIGH
    assert found["pickle.dangerous-global"] == Severity.CRITICAL  # both copies analysed


def test_tar_duplicate_names_are_high() -> None:
    assert _rules(_tar([("a.pkl", BENIGN), ("a.pkl", BENIGN)]))["archive.duplicate-member"] == Severity.HIGH


def test_zip_bad_crc_is_high() -> None:
    data = bytearray(_zip({"a.bin": b"A" * 64}, zipfile.ZIP_STORED))
    i = data.index(b"A" * 64)
    data[i] = ord("B")
    assert _rules(bytes(data))["archive.bad-crc"] == Severity.HIGH


def test_zip_local_central_mismatch_is_high() -> None:
    data = bytearray(_zip({"a.pkl": BENIGN}, zipfile.ZIP_STORED))
    # Rename the member in the local header only: another tool sees another file.
    i = data.index(b"a.pkl")
    data[i : i + 5] = b"b.pkl"
    assert _rules(bytes(data))["archive.header-mismatch"] == Severity.HIGH


def test_zip_overlapping_members_are_high() -> None:
    data = bytearray(_zip({"a.bin": b"x" * 40, "b.bin": b"y" * 40}, zipfile.ZIP_STORED))
    # Point b's central entry at a's local header (two names, same bytes: the overlapping-file bomb trick).
    cd = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 42, 0)
    found = _rules(bytes(data))
    assert found["archive.overlapping-members"] == Severity.HIGH


def test_pickle_with_zip_appended_is_not_clean() -> None:
    found = _rules(BENIGN + _zip({"a.pkl": EVIL}))
    assert found["pickle.trailing-data"] >= Severity.HIGH
    assert found["archive.polyglot"] == Severity.MEDIUM
    assert found["pickle.dangerous-global"] == Severity.CRITICAL  # the zip part was analysed too


def test_zip_behind_a_prefix_is_found() -> None:
    # zipfile finds archives from their end, so Keras/zip loaders open this; the scanner must too.
    found = _rules(b"JUNKJUNK" + _zip({"config.pkl": EVIL}))
    assert found["archive.prepended-data"] == Severity.MEDIUM
    assert found["pickle.dangerous-global"] == Severity.CRITICAL


def test_decompression_ratio_bomb_is_stopped() -> None:
    bomb = gzip.compress(b"\0" * (8 << 20))
    limits = ScanLimits(ratio_floor_bytes=1 << 20, max_ratio=50)
    assert _rules(bomb, limits=limits)["limit.ratio"] == Severity.HIGH


def test_expanded_size_limit_is_stopped() -> None:
    data = zlib.compress(BENIGN + b"\0" * (4 << 20))
    limits = ScanLimits(max_expanded_bytes=1 << 20)
    assert _rules(data, limits=limits)["limit.size"] == Severity.HIGH


def test_nesting_depth_limit() -> None:
    data = EVIL
    for i in range(4):
        data = _zip({f"level{i}.zip": data})
    found = _rules(data, limits=ScanLimits(max_depth=2))
    assert found["limit.depth"] == Severity.HIGH


def test_member_count_limit() -> None:
    data = _zip({f"f{i}.txt": b"x" for i in range(20)})
    assert _rules(data, limits=ScanLimits(max_members=5))["limit.members"] == Severity.HIGH


def test_corrupt_gzip_is_high() -> None:
    data = gzip.compress(EVIL * 50)[:-30]
    found = _rules(data)
    assert found["archive.corrupt"] >= Severity.HIGH


def test_broken_seven_zip_is_high() -> None:
    found = _rules(b"7z\xbc\xaf\x27\x1c" + b"\0" * 30)
    assert max(found.values()) >= Severity.HIGH


def test_folder_with_archive(tmp_path: Path) -> None:
    (tmp_path / "m.zip").write_bytes(_zip({"x/model.pkl": EVIL}))
    (tmp_path / "clean.pkl").write_bytes(BENIGN)
    report = scan_path(tmp_path)
    assert len(report.files) == 2
    (finding,) = report.findings
    assert finding.file.endswith("m.zip")
    assert finding.inner_path == "x/model.pkl"


def _lz4_frame(blocks: list[tuple[bytes, bool]]) -> bytes:
    out = b"\x04\x22\x4d\x18" + bytes([0x60, 0x40, 0x82])  # version 1, independent blocks, 64 KB
    for block, compressed in blocks:
        out += struct.pack("<I", len(block) | (0 if compressed else 0x80000000)) + block
    return out + b"\0\0\0\0"


def _lz4_literals(data: bytes) -> bytes:
    n = len(data)
    extra = b""
    if n >= 15:
        rest = n - 15
        extra = b"\xff" * (rest // 255) + bytes([rest % 255])
    return bytes([min(n, 15) << 4]) + extra + data


@pytest.fixture(params=["lz4-package", "pure-python"])
def lz4_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the optional ``lz4`` package's reader, and again with the built-in decoder."""
    if request.param == "pure-python":
        monkeypatch.setitem(sys.modules, "lz4", None)  # import lz4.frame now raises ImportError
        monkeypatch.setitem(sys.modules, "lz4.frame", None)
    else:
        import lz4.frame  # noqa: F401 - the dev extra installs it; this run must use it
    return str(request.param)


def test_lz4_stream_is_decoded_with_or_without_the_lz4_package(lz4_reader: str) -> None:
    framed = _lz4_frame([(_lz4_literals(EVIL[:10]), True), (EVIL[10:], False)])
    report = scan_bytes(framed)
    assert report.files[0].format == "lz4+pickle"
    assert report.max_severity == Severity.CRITICAL


# frames written by the lz4 package (what joblib's compress="lz4" writes): linked 64 KiB blocks,
# several of them, with and without checksums
_BIG = pickle.dumps({"w": [float(i % 97) for i in range(60_000)], "tag": "x" * 70_000}, protocol=4)
LZ4_FRAMES = {
    "evil": (lz4.frame.compress(EVIL), True),
    "benign-multiblock": (lz4.frame.compress(_BIG, block_size=lz4.frame.BLOCKSIZE_MAX64KB), False),
    "benign-checksums": (lz4.frame.compress(_BIG, content_checksum=True, block_checksum=True,
                                           block_linked=False), False),
    "evil-after-benign-block": (lz4.frame.compress(_BIG[:-1] + b"0" + EVIL,
                                                   block_size=lz4.frame.BLOCKSIZE_MAX64KB), True),
}


@pytest.mark.parametrize("name", list(LZ4_FRAMES))
def test_lz4_package_frames_read_by_both_readers(lz4_reader: str, name: str) -> None:
    framed, evil = LZ4_FRAMES[name]
    report = scan_bytes(framed)
    assert report.files[0].format == "lz4+pickle"
    worst = report.max_severity
    if evil:
        assert worst is not None and worst >= Severity.HIGH
    else:
        assert worst is None, report.findings


def test_lz4_matches_copy_from_history() -> None:
    from bastion.scan.archive import _Lz4Frames

    block = bytes([0x44]) + b"abcd" + b"\x04\x00" + bytes([0x30]) + b"xyz"  # 4 literals, 8-byte match, 3 literals
    assert _Lz4Frames(io.BytesIO(_lz4_frame([(block, True)]))).read() == b"abcdabcdabcdxyz"


def test_lz4_bad_offset_is_corrupt(lz4_reader: str) -> None:
    block = bytes([0x14]) + b"a" + b"\x09\x00"
    assert _rules(_lz4_frame([(block, True)]))["archive.corrupt"] == Severity.HIGH


# -- member names that name the same file -----------------------------------------------------------


def _num7(v: int) -> bytes:
    """7z NUMBER encoding (values below 2**56 are enough here)."""
    for i in range(8):
        if v < 1 << (8 * i + 7 - i):
            first = ((0xFF << (8 - i)) & 0xFF) | (v >> (8 * i))
            return bytes([first]) + (v & ((1 << (8 * i)) - 1)).to_bytes(i, "little")
    return b"\xff" + v.to_bytes(8, "little")


def _seven(members: list[tuple[str, bytes]]) -> bytes:
    """A stored (Copy coder) 7z with the names exactly as given: py7zr rewrites './x', 'a//b', 'x/'."""
    packed = b"".join(d for _, d in members)
    h = b"\x01\x04\x06" + _num7(0) + _num7(1) + b"\x09" + _num7(len(packed)) + b"\x00"
    h += b"\x07\x0b" + _num7(1) + b"\x00" + _num7(1) + b"\x01\x00" + b"\x0c" + _num7(len(packed)) + b"\x00"
    h += b"\x08\x0d" + _num7(len(members)) + b"\x09" + b"".join(_num7(len(d)) for _, d in members[:-1])
    h += b"\x0a\x01" + b"".join(struct.pack("<I", zlib.crc32(d)) for _, d in members) + b"\x00\x00"
    names = b"\x00" + "".join(n + "\0" for n, _ in members).encode("utf-16-le")
    h += b"\x05" + _num7(len(members)) + b"\x11" + _num7(len(names)) + names + b"\x00\x00"
    start = struct.pack("<QQI", len(packed), len(h), zlib.crc32(h))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start + packed + h


def _zip_raw(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some rows
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in members:
                zf.writestr(name, data)
    return buf.getvalue()


ARCHIVERS = {"zip": _zip_raw, "tar": lambda m: _tar(list(m)), "7z": _seven}


def _npy() -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype=np.float32))
    return buf.getvalue()


CONTENT = {"pickle": BENIGN, "text": b"a model card\n", "npy": _npy()}

# (first name, second name, content of both, severity of archive.colliding-members or None)
NAME_PAIRS = [
    # same path to every extractor (or to a loader that normalizes): HIGH whatever the content
    ("model/data.pkl", "model\\data.pkl", "pickle", Severity.HIGH),
    ("notes/a.txt", "notes\\a.txt", "text", Severity.HIGH),
    ("./model.pkl", "model.pkl", "pickle", Severity.HIGH),
    ("a//b.txt", "a/b.txt", "text", Severity.HIGH),
    ("model/./data.pkl", "model/data.pkl", "pickle", Severity.HIGH),
    ("data.pkl.", "data.pkl", "pickle", Severity.HIGH),
    ("data.pkl ", "data.pkl", "pickle", Severity.HIGH),
    ("x/", "x", "text", Severity.HIGH),
    ("caf\u00e9.txt", "cafe\u0301.txt", "text", Severity.HIGH),  # NFC vs NFD
    # letter case only: HIGH when either copy carries code, MEDIUM for plain data
    ("Data.pkl", "data.pkl", "pickle", Severity.HIGH),
    ("archive/DATA.pkl", "archive/data.pkl", "pickle", Severity.HIGH),
    ("README.md", "readme.md", "text", Severity.MEDIUM),
    ("X.npy", "x.npy", "npy", Severity.MEDIUM),
    # good rows: different files
    ("a/b.pkl", "a/c.pkl", "pickle", None),
    ("data.pkl", "data.pkl.bak", "pickle", None),
    ("archive/.data/version", "archive/data/version", "text", None),
    ("x..pkl", "x.pkl", "pickle", None),
    ("a.b/c.txt", "a/b.c.txt", "text", None),
    ("caf\u00e9.txt", "cafe.txt", "text", None),
    ("model.pkl", "model/pkl", "pickle", None),
]


@pytest.mark.parametrize("kind", sorted(ARCHIVERS))
@pytest.mark.parametrize(("first", "second", "content", "expected"), NAME_PAIRS,
                         ids=[f"{a!r}-{b!r}" for a, b, _, _ in NAME_PAIRS])
def test_colliding_member_names(kind: str, first: str, second: str, content: str,
                                expected: Severity | None) -> None:
    data = CONTENT[content]
    report = scan_bytes(ARCHIVERS[kind]([(first, data), (second, data)]))
    found = [f for f in report.findings if f.rule_id == "archive.colliding-members"]
    if expected is None:
        assert report.findings == ()
        return
    (finding,) = found
    assert finding.severity == expected
    assert repr(first) in finding.construct and repr(second) in finding.construct
    assert finding.construct.startswith(f"{kind} members")
    # nothing else is wrong with these archives (a name with '..' would also be path traversal)
    assert {f.rule_id for f in report.findings} == {"archive.colliding-members"}


@pytest.mark.parametrize("kind", sorted(ARCHIVERS))
def test_collision_with_the_malicious_copy_is_high_and_the_payload_found(kind: str) -> None:
    found = _rules(ARCHIVERS[kind]([("data.pkl", BENIGN), ("DATA.pkl", EVIL), ("archive\\data.pkl", EVIL)]))
    assert found["archive.colliding-members"] == Severity.HIGH
    assert found["pickle.dangerous-global"] == Severity.CRITICAL


@pytest.mark.parametrize("kind", sorted(ARCHIVERS))
def test_exact_duplicates_stay_duplicates_and_add_no_collision(kind: str) -> None:
    found = _rules(ARCHIVERS[kind]([("a.pkl", BENIGN), ("a.pkl", BENIGN)]))
    assert found == {"archive.duplicate-member": Severity.HIGH}


def test_three_spellings_are_one_finding() -> None:
    report = scan_bytes(_zip_raw([("m/data.pkl", BENIGN), ("M/Data.pkl", BENIGN), ("m\\data.pkl", BENIGN)]))
    (finding,) = [f for f in report.findings if f.rule_id == "archive.colliding-members"]
    assert finding.severity == Severity.HIGH
    assert all(repr(n) in finding.construct for n in ("m/data.pkl", "M/Data.pkl", "m\\data.pkl"))


def test_keras_config_case_collision_is_high() -> None:
    # the scanner reads 'config.json' of a .keras zip as Keras configuration (code can hide there);
    # 'CONFIG.json' is plain text to it, so a case-insensitive extraction could swap in an unread config
    config = b'{"class_name": "Sequential", "config": {"layers": []}}'
    data = _zip_raw([("metadata.json", b'{"keras_version": "3.3.3"}'), ("config.json", config),
                     ("model.weights.h5", b"\x89HDF\r\n\x1a\n"), ("CONFIG.json", config)])
    found = _rules(data)
    assert found["archive.colliding-members"] == Severity.HIGH


def test_members_read_from_an_extraction_collide_at_high() -> None:
    # the py7zr fallback extracts to disk first: on a case-insensitive file system it would see one copy
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", filters=[{"id": py7zr.FILTER_PPMD}]) as z:
        z.writestr(b"card one\n", "README.md")
        z.writestr(b"card two\n", "readme.md")
    report = scan_bytes(buf.getvalue())
    (finding,) = [f for f in report.findings if f.rule_id == "archive.colliding-members"]
    assert finding.severity == Severity.HIGH


@pytest.mark.parametrize(
    ("name", "normalized"),
    [("a/b", "a/b"), ("a\\b", "a/b"), ("./x", "x"), ("a//b/", "a/b"), ("a/./b/.", "a/b"), ("data.pkl. ", "data.pkl"),
     ("cafe\u0301", "caf\u00e9"), ("a/../b", "b"), ("../x", "../x"), ("C:\\x", "x"), ("/abs", "abs"), ("...", "..."),
     ("x\x00.txt", "x"), ("", ""), ("Data.PKL", "Data.PKL")],
)
def test_normalize_member_name(name: str, normalized: str) -> None:
    assert normalize_member_name(name) == normalized


def test_names_are_normalized_once_per_member(monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.scan import archive

    calls: list[str] = []
    real = archive.normalize_member_name

    def counting(name: str) -> str:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(archive, "normalize_member_name", counting)
    names = [f"layer{i}/w.txt" for i in range(300)] + ["Layer7/W.txt"]
    report = scan_bytes(_zip_raw([(n, b"x") for n in names]))
    assert sorted(calls) == sorted(names)
    assert [f.rule_id for f in report.findings] == ["archive.colliding-members"]


TRAVERSAL_NAMES = ["..\\..\\evil.pkl", "model\\..\\..\\evil.pkl", "C:/evil.pkl", "C:\\evil.pkl", "C:evil.pkl",
                   "\\\\server\\share\\evil.pkl", "/abs/evil.pkl", "../evil.pkl"]


@pytest.mark.parametrize("kind", sorted(ARCHIVERS))
@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
def test_path_traversal_with_windows_names(kind: str, name: str) -> None:
    report = scan_bytes(ARCHIVERS[kind]([("model/ok.txt", b"x"), (name, BENIGN)]))
    hits = [f for f in report.findings if f.rule_id == "archive.path-traversal"]
    assert [f.severity for f in hits] == [Severity.HIGH]
    assert repr(name) in hits[0].construct


# -- two archives in one file: offsets that readers resolve differently -----------------------------------------

def _forge_crc(prefix: bytes, target: int) -> bytes:
    """Four bytes ``x`` with ``crc32(prefix + x) == target`` (CRC-32 is affine over GF(2))."""
    base = zlib.crc32(prefix + bytes(4))
    basis: list[tuple[int, int]] = []
    for bit in range(32):
        vec, combo = zlib.crc32(prefix + (1 << bit).to_bytes(4, "little")) ^ base, 1 << bit
        for b_vec, b_combo in basis:
            if vec ^ b_vec < vec:
                vec, combo = vec ^ b_vec, combo ^ b_combo
        if vec:
            basis.append((vec, combo))
            basis.sort(reverse=True)
    want, combo = base ^ target, 0
    for b_vec, b_combo in basis:
        if want ^ b_vec < want:
            want, combo = want ^ b_vec, combo ^ b_combo
    assert want == 0
    return combo.to_bytes(4, "little")


def _concatenated_checkpoint(canary: Path) -> bytes:
    """``evil + good``: two byte-identical torch zips but for data.pkl (same length, same CRC). Python's zipfile
    shifts the trailing central directory's offsets by the prefix and reads ``good``; torch's miniz takes them
    as written and reads ``evil``'s members, whose local headers match in every field."""
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    good = buf.getvalue()
    name = next(n for n in zipfile.ZipFile(io.BytesIO(good)).namelist() if n.endswith("/data.pkl"))
    benign = zipfile.ZipFile(io.BytesIO(good)).read(name)
    cmd = f"touch {canary}".encode()
    payload = b"\x80\x02cposix\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."
    body = payload + bytes(len(benign) - len(payload) - 4)
    body += _forge_crc(body, zlib.crc32(benign))
    at = good.index(benign)
    return good[:at] + body + good[at + len(benign):] + good


def test_second_archive_in_front_is_found(tmp_path: Path) -> None:
    import subprocess

    canary = tmp_path / "PWNED"
    data = _concatenated_checkpoint(canary)
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    # what a reviewer sees (Python's zipfile) is the benign checkpoint ...
    name = next(n for n in zipfile.ZipFile(path).namelist() if n.endswith("/data.pkl"))
    assert b"posix" not in zipfile.ZipFile(path).read(name)
    # ... while torch.load runs the payload in front
    subprocess.run([sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1], weights_only=False)",
                    str(path)], check=False, capture_output=True, timeout=120)
    assert canary.exists()
    canary.unlink()
    rules = _rules(data)
    assert rules["archive.offset-mismatch"] == Severity.HIGH
    assert rules["pickle.dangerous-global"] == Severity.CRITICAL  # the front archive is scanned as '(prepended)'
    assert not canary.exists()


def test_polyglot_prefix_is_scanned_as_content() -> None:
    # a pickle in front of a zip whose offsets are absolute (every reader agrees on the members)
    members = _zip({"a.txt": b"hello"}, method=zipfile.ZIP_STORED)
    evil = b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R."
    shifted = bytearray(members)
    eocd = shifted.rindex(b"PK\x05\x06")
    (cd_offset,) = struct.unpack_from("<I", shifted, eocd + 16)
    struct.pack_into("<I", shifted, eocd + 16, cd_offset + len(evil))
    cd = cd_offset
    while shifted[cd:cd + 4] == b"PK\x01\x02":
        (local,) = struct.unpack_from("<I", shifted, cd + 42)
        struct.pack_into("<I", shifted, cd + 42, local + len(evil))
        nlen, elen, clen = struct.unpack_from("<HHH", shifted, cd + 28)
        cd += 46 + nlen + elen + clen
    rules = _rules(evil + bytes(shifted))
    assert "archive.offset-mismatch" not in rules
    assert rules["pickle.dangerous-global"] == Severity.CRITICAL
    assert _rules(members) == {}
