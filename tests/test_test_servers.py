"""The test servers (tests/conftest.py) leave nothing in the temp directory: not when they ran, not when they failed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import tests.conftest as conftest


def _temp_names(prefix: str) -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(prefix + "*")}


def _failing_binary(tmp_path: Path, name: str) -> str:
    exe = tmp_path / name
    exe.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 1\n", encoding="utf-8")
    exe.chmod(0o700)
    return str(exe)


def test_weed_keeps_its_logs_and_sockets_in_its_own_folder(s3_server: conftest.SeaweedS3) -> None:
    ports = {s3_server.master_port, s3_server.volume_port, s3_server.filer_port, s3_server.s3_port}
    ports |= {p + 10000 for p in ports}
    own = {p for p in Path("/tmp").glob("seaweedfs-*.sock") if any(p.name.endswith(f"-{n}.sock") for n in ports)}
    # the only ones outside its folder are the gRPC sockets weed hard-codes to /tmp, which stop() removes
    assert own == set(s3_server.grpc_sockets())
    assert all(p.is_socket() for p in own)
    made = {p.name for p in (s3_server.base / "tmp").iterdir()}
    assert any(n.startswith("weed.") for n in made), f"weed's own log files go to its folder: {made}"


def test_a_weed_that_does_not_start_leaves_no_folder_and_no_socket(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "find_weed", lambda: _failing_binary(tmp_path, "weed"))
    base = 50000 + os.getpid() % 5000      # 4 ports no other test server uses now (their sockets are absent)
    ports = iter(p for p in range(base, base + 400) if not any(Path("/tmp").glob(f"seaweedfs-*-{p + 10000}.sock")))
    chosen = [next(ports) for _ in range(4)]
    monkeypatch.setattr(conftest, "free_port", lambda below=65536: chosen.pop())
    kinds = ["master", "volume", "filer", "s3"]
    leftovers = [Path(f"/tmp/seaweedfs-{k}-grpc-{p + 10000}.sock") for k, p in zip(kinds, sorted(chosen), strict=True)]
    for f in leftovers:             # what a weed that got as far as its gRPC servers leaves behind
        f.write_text("", encoding="utf-8")
    before = _temp_names("bastion-s3-")
    with pytest.raises(RuntimeError, match="weed exited with 1: cannot start"):
        conftest.SeaweedS3()
    assert _temp_names("bastion-s3-") - before == set()
    assert [f for f in leftovers if f.exists()] == []


def test_a_postgres_that_does_not_start_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "find_pg_bin", lambda name: _failing_binary(tmp_path, name))
    before = _temp_names("bastion-pg-")
    with pytest.raises(RuntimeError, match="initdb failed"):
        conftest.PostgresCluster()
    assert _temp_names("bastion-pg-") - before == set()
