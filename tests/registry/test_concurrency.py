"""Eight processes register versions of one model at once: no gaps, no duplicates, one intact chain."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bastion.project import init_project, open_project

WORKERS = 8
EACH = 3


def _worker(root: str, url: str | None, n: int, start: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    if url:
        os.environ["BASTION_DATABASE_URL"] = url
    os.environ["BASTION_SCAN_ON_REGISTER"] = "false"
    p = open_project(root)
    start.wait(30)
    for i in range(n):
        f = Path(root) / f"artifact-{os.getpid()}-{i}.bin"
        f.write_bytes(os.urandom(64))
        p.log_model(f, name="shared", metrics={"i": i}, flavor="file")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_parallel_registration(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    project = init_project(tmp_path, database_url=url)
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), url, EACH, start)) for _ in range(WORKERS)]
    for pr in procs:
        pr.start()
    start.set()
    for pr in procs:
        pr.join(120)
        assert pr.exitcode == 0
    versions = [m.version for m in project.list_models("shared")]
    assert versions == list(range(1, WORKERS * EACH + 1))
    report = project.audit.verify()
    assert report.ok, report.problem
    assert report.entries == 1 + WORKERS * EACH


_KILLABLE = """
import os, sys
os.environ["BASTION_SCAN_ON_REGISTER"] = "false"
from bastion.project import open_project
p = open_project(sys.argv[1])
p.log_model(sys.argv[2], name="big", flavor="file")
"""


def test_kill_during_registration_leaves_no_half_version(tmp_path: Path) -> None:
    project = init_project(tmp_path / "proj")
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.write(os.urandom(1 << 20))
        f.truncate(256 << 20)  # sparse: large to copy, cheap to create
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(project.root), str(big)])
    tmpdir = project.home / "artifacts" / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(f.stat().st_size > 0 for f in tmpdir.iterdir()):
            break
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert project.list_models() == []
    for d in project.blobs.iter_digests():
        project.blobs.get_bytes(d)  # every stored blob is whole (raises on a partial one)
    assert project.audit.verify().ok
    os.environ.pop("BASTION_SCAN_ON_REGISTER", None)
    proc2 = subprocess.run([sys.executable, "-c", _KILLABLE, str(project.root), str(big)], timeout=120)
    assert proc2.returncode == 0
    assert [m.ref for m in project.list_models()] == ["big:1"]
    assert project.audit.verify().ok
