"""The scan engine: paths and folders, unreadable input, plugins, crash containment."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import IO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.errors import ScanError
from bastion.scan import FormatScanner, ScanContext, ScanLimits, Severity, _engine, scan_bytes, scan_path

EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."


def test_missing_path_raises_scan_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="no such file"):
        scan_path(tmp_path / "nope.pkl")


def test_unreadable_file_raises_scan_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.pkl"
    target.write_bytes(b"x")

    def denied(self: Path, *a: object, **k: object) -> IO[bytes]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ScanError, match="Permission denied"):
        scan_path(target)


def test_unreadable_file_in_folder_is_an_error_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(1))
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(2))
    real_open = Path.open

    def flaky(self: Path, *a: object, **k: object) -> IO[bytes]:
        if self.name == "b.pkl":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *a, **k)  # type: ignore[arg-type, return-value]

    monkeypatch.setattr(Path, "open", flaky)
    report = scan_path(tmp_path)
    assert [Path(e.path).name for e in report.errors] == ["b.pkl"]
    assert not report.is_clean()


def test_folder_is_recursive_and_content_based(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "weights.bin").write_bytes(EVIL)  # extension says nothing
    (tmp_path / "README.md").write_text("# model\n")
    seen: list[tuple[int, int]] = []
    report = scan_path(tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (2, 2)
    formats = {Path(f.path).name: f.format for f in report.files}
    assert formats == {"weights.bin": "pickle", "README.md": "unknown"}
    assert report.max_severity == Severity.CRITICAL


def test_digest_matches_and_can_be_skipped(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(EVIL)
    assert scan_path(tmp_path / "m.pkl", digest=True).files[0].sha256 == hashlib.sha256(EVIL).hexdigest()
    assert scan_path(tmp_path / "m.pkl").files[0].sha256 is None  # opt-in, like the CLI's --digest


def test_symlink_outside_folder_is_noted(tmp_path: Path) -> None:
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps(1))
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(outside, folder / "link.pkl")
    report = scan_path(folder)
    assert [f.rule_id for f in report.findings] == ["fs.symlink"]


class _Boom(FormatScanner):
    name = "boom"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"BOOM")

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        raise KeyError("scanner bug")


class _Note(FormatScanner):
    name = "note"

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"NOTE")

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        ctx.add("note.seen", Severity.LOW, "note", "a plugin saw this", "none", offset=0)


def test_plugins_run_and_their_crashes_are_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_engine, "_PLUGINS", [_Boom(), _Note()])
    note = scan_bytes(b"NOTE this".ljust(80, b"."))
    assert note.files[0].format == "note"
    assert [(f.rule_id, f.severity) for f in note.findings] == [("note.seen", Severity.LOW)]
    boom = scan_bytes(b"BOOM".ljust(80, b"."))
    assert [(f.rule_id, f.severity) for f in boom.findings] == [("scan.internal-error", Severity.HIGH)]


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        ScanLimits(max_depth=0)
    with pytest.raises(ValueError, match="time_per_file"):
        ScanLimits(time_per_file=0)


def test_empty_file_is_clean() -> None:
    report = scan_bytes(b"")
    assert report.files[0].format == "empty"
    assert report.findings == ()


_MAGICS = [b"PK\x03\x04", b"\x1f\x8b", b"BZh9", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c", b"\x93NUMPY\x01\x00",
           b"\x93NUMPY\x02\x00", b"\x89HDF\r\n\x1a\n", b"GGUF\x03\x00\x00\x00", b"(\x00\x00\x00\x00\x00\x00\x00{",
           b"\x80\x04", b"\x08\x07\x12\x02ab:", b"\0" * 257 + b"ustar\x0000", b"x\x9c",
           b"\x04\x22\x4d\x18\x60\x40\x82"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_MAGICS), st.binary(max_size=300))
def test_fuzz_every_format_without_internal_errors(magic: bytes, tail: bytes) -> None:
    report = scan_bytes(magic + tail, limits=ScanLimits(time_per_file=2.0))
    assert not [f for f in report.findings if f.rule_id == "scan.internal-error"]


def test_fifo_is_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(1))
    report = scan_path(tmp_path)  # opening the FIFO would block forever
    assert [f.rule_id for f in report.findings] == ["fs.special-file"]
    with pytest.raises(ScanError, match="not a regular file"):
        scan_path(tmp_path / "pipe")


def test_builtin_table_covers_every_detected_format() -> None:
    from bastion.scan.archive import CompressedScanner

    table = _engine.builtin_scanners()
    assert set(CompressedScanner.formats) <= set(table)
    assert {"zip", "tar", "7z", "numpy", "hdf5", "gguf", "safetensors", "onnx", "pickle"} <= set(table)
    assert all(isinstance(s, FormatScanner) for s in table.values())
    assert table["gzip"] is table["lz4"]  # one instance per scanner class


def _fake_distribution(root: Path, group: str) -> None:
    """A plugin package and its dist-info, as `pip install` would lay them out."""
    (root / "fake_scan_plugin.py").write_text(
        "from bastion.scan import FormatScanner\n"
        "class Plugin(FormatScanner):\n"
        "    name = 'fakefmt'\n"
        "    def sniff(self, head):\n"
        "        return head.startswith(b'FAKEFMT')\n"
        "    def scan(self, stream, ctx):\n"
        "        ctx.add('fake.seen', 20, 'fake', 'the plugin ran', 'none')\n"
    )
    info = root / "fake_scan_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-scan-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\nfake = fake_scan_plugin:Plugin\n")


@pytest.mark.parametrize("group, found", [("bastion.scanners", True), ("other.group", False)])
def test_plugins_are_discovered_from_installed_distributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str, found: bool
) -> None:
    import sys

    _fake_distribution(tmp_path, group)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_engine, "_PLUGINS", None)
    # the cheap pre-check never hides a plugin that importlib.metadata would load
    assert _engine._no_plugins_declared() is not found
    report = scan_bytes(b"FAKEFMT".ljust(80, b"."))
    assert (report.files[0].format == "fakefmt") is found
    assert [f.rule_id for f in report.findings] == (["fake.seen"] if found else [])
    monkeypatch.delitem(sys.modules, "fake_scan_plugin", raising=False)


@pytest.mark.parametrize("layout", ["Fake_Scan_Plugin-1.0.DIST-INFO", "fake_scan_plugin.egg-info",
                                    "fake_scan_plugin-1.0.egg/EGG-INFO", "fake_scan_plugin-1.0.egg/egg-info",
                                    "Fake-1.0.EGG/Egg-Info"])
def test_plugin_precheck_sees_every_metadata_layout_importlib_metadata_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    from importlib import metadata

    entry, _, info_name = layout.rpartition("/")
    root = tmp_path / entry if entry else tmp_path
    root.mkdir(parents=True, exist_ok=True)
    info = root / info_name
    info.mkdir()
    (info / "PKG-INFO" if "egg" in info_name.lower() else info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-scan-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[bastion.scanners]\nfake = fake_scan_plugin:Plugin\n")
    monkeypatch.syspath_prepend(str(root))
    assert [ep.name for ep in metadata.entry_points(group="bastion.scanners")] == ["fake"]
    assert _engine._no_plugins_declared() is False  # a declared plugin is never skipped


def test_plugin_precheck_agrees_with_importlib_metadata() -> None:
    from importlib import metadata

    assert _engine._no_plugins_declared() == (not list(metadata.entry_points(group="bastion.scanners")))


# Modules the scan must not import to scan a torch checkpoint or a plain pickle (start-up time is
# part of the whole-process bar against picklescan): a deterministic guard, not a timing.
SCAN_PATH_FORBIDDEN = [
    "typer", "click", "rich", "pydantic", "pandas", "numpy", "torch", "sqlalchemy", "bastion.project",
    "typing", "logging", "tarfile", "tempfile", "hashlib", "pickletools", "importlib.metadata",
    "importlib.resources", "bastion.scan.onnx", "bastion.scan.safetensors", "bastion.scan.gguf",
    "bastion.scan.numpy",
]


def test_scanning_imports_only_what_the_format_needs(tmp_path: Path) -> None:
    import json
    import zipfile

    from .fresh import scan_in_fresh_interpreter

    ckpt = tmp_path / "model.pt"
    with zipfile.ZipFile(ckpt, "w") as zf:  # the layout torch.save writes
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data/0", b"\0" * 64)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"a": [1.0]}, protocol=4))
    (tmp_path / "notes.json").write_text(json.dumps({"about": "x" * 100}))
    out, _ = scan_in_fresh_interpreter(tmp_path)
    assert out["files"] == 3 and out["rules"] == []
    assert sorted(set(SCAN_PATH_FORBIDDEN) & set(out["new"])) == []
