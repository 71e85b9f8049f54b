"""PyTorch checkpoints: zip layout (any inner pickle name, tensor blobs unread), legacy formats, TorchScript."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest

from bastion.scan import Severity, scan_path
from bastion.scan.torch import is_tensor_blob, zip_layout

TORCH_DIR = Path(__file__).parent / "data" / "torch"


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


def _rewrite(src: Path, dest: Path, replace: dict[str, bytes], add: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, replace.get(info.filename, zin.read(info.filename)))
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dest


def _root(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()[0].split("/")[0]


def test_malicious_data_pkl_is_critical(tmp_path: Path) -> None:
    src = TORCH_DIR / "state.pt"
    bad = _rewrite(src, tmp_path / "bad.pt", {f"{_root(src)}/data.pkl": pickle.dumps(_Evil(), protocol=2)})
    report = scan_path(bad)
    assert report.files[0].format == "pytorch"
    (finding,) = [f for f in report.findings if f.rule_id == "pickle.dangerous-global"]
    assert finding.severity == Severity.CRITICAL
    assert finding.inner_path == f"{_root(src)}/data.pkl"


def test_any_inner_pickle_name_is_scanned(tmp_path: Path) -> None:
    src = TORCH_DIR / "state.pt"
    bad = _rewrite(src, tmp_path / "bad.pt", {}, {f"{_root(src)}/extra/other.bin": pickle.dumps(_Evil())})
    assert scan_path(bad).max_severity == Severity.CRITICAL


def test_tensor_blobs_are_not_read(tmp_path: Path) -> None:
    # torch never unpickles data/<key> members; the scanner does not read them (constant work per tensor).
    src = TORCH_DIR / "state.pt"
    with zipfile.ZipFile(src) as zf:
        blob = next(n for n in zf.namelist() if "/data/" in n)
    patched = _rewrite(src, tmp_path / "p.pt", {blob: pickle.dumps(_Evil())})
    assert scan_path(patched).findings == ()


def test_persistent_ids_allowed_only_inside_torch(tmp_path: Path) -> None:
    src = TORCH_DIR / "state.pt"
    with zipfile.ZipFile(src) as zf:
        data_pkl = zf.read(f"{_root(src)}/data.pkl")
    (tmp_path / "bare.pkl").write_bytes(data_pkl)
    rules = {f.rule_id for f in scan_path(tmp_path / "bare.pkl").findings}
    assert "pickle.persistent-id" in rules


def test_legacy_format_payload_is_found(tmp_path: Path) -> None:
    raw = (TORCH_DIR / "legacy-state.pt").read_bytes()
    # Splice a payload in place of the 4th pickle (the main object) by appending it as an extra object
    # to the sys_info position: simplest real attack is a hostile main pickle.
    evil = pickle.dumps(_Evil(), protocol=2)
    magic_end = raw.index(b".") + 1
    (tmp_path / "legacy-bad.pt").write_bytes(raw[:magic_end] + evil + raw[magic_end:])
    report = scan_path(tmp_path / "legacy-bad.pt")
    assert report.max_severity == Severity.CRITICAL


def test_torchscript_is_info_and_its_helpers_allowed() -> None:
    report = scan_path(TORCH_DIR / "scripted.pt")
    assert {f.rule_id for f in report.findings} == {"torch.torchscript"}
    assert report.max_severity == Severity.INFO


@pytest.mark.parametrize(
    ("names", "root"),
    [
        (["archive/data.pkl", "archive/version", "archive/data/0"], "archive"),
        (["m/data.pkl", "m/.data/version"], "m"),
        (["x/data.pkl"], None),
        (["config.json", "metadata.json"], None),
    ],
)
def test_zip_layout(names: list[str], root: str | None) -> None:
    assert zip_layout(names) == root


@pytest.mark.parametrize(
    ("name", "blob"),
    [("archive/data/0", True), ("archive/data/17", True), ("archive/data/x.pkl", False),
     ("archive/data.pkl", False), ("archive/data/a/b", False)],
)
def test_tensor_blob_names(name: str, blob: bool) -> None:
    assert is_tensor_blob(name, "archive") is blob


@pytest.mark.parametrize("name", ["state.pt", "legacy-state.pt", "legacy-whole.pt"])
def test_scan_bytes_matches_scan_path(name: str) -> None:
    from bastion.scan import scan_bytes

    data = (TORCH_DIR / name).read_bytes()
    assert scan_bytes(data, name=name).findings == ()
    assert scan_bytes(data).files[0].format == scan_path(TORCH_DIR / name).files[0].format
