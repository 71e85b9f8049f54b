"""The server for real: `bastion serve` in its own process on loopback, 10,000 requests from several clients
(every one answered and journaled), then kill -9 under load (no acknowledged request missing from the journal)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _journal_ids(home: Path) -> tuple[list[str], list[Any]]:
    from bastion.serve.audit_sink import iter_journal, verify_journal

    ids: list[str] = []
    reports = []
    for path in sorted((home / "serve" / "audit").glob("journal-*.jsonl")):
        reports.append(verify_journal(path))
        ids += [e["request_id"] for e in iter_journal(path) if "request_id" in e]
    return ids, reports


def _hammer(url: str, body: dict[str, Any], key: str, n: int, acked: list[str], errors: list[str],
            stop: threading.Event | None = None) -> None:
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
        for _ in range(n):
            if stop is not None and stop.is_set():
                return
            try:
                r = c.post(url, json=body)
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)
                return
            if r.status_code == 200:
                acked.append(r.headers["x-request-id"])
            else:
                errors.append(str(r.status_code))


@pytest.mark.slow
def test_load_then_kill_9_loses_no_acknowledged_audit_entry(tmp_path: Path) -> None:
    from bastion.project import open_project
    from bastion.serve import create_api_key
    from bastion.serve._sample import build_sample_project

    sample = build_sample_project(tmp_path / "proj", versions=1, rows=800, categorical=False, protect_email=False)
    p = open_project(sample.root)
    key = create_api_key(p, "load", ["predict"]).key
    p.close()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "serve", "sample@production", "--port", str(port), "--project",
         str(sample.root), "--rate", "0", "--poll", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        row = {f: float(v) for f, v in sample.frame[list(sample.features)].iloc[0].items()}
        body = {"instances": [row]}
        url = f"{base}/v1/models/sample:predict"

        # 1. 10,000 requests from 8 concurrent clients: all answered, all journaled
        acked: list[str] = []
        errors: list[str] = []
        threads = [threading.Thread(target=_hammer, args=(url, body, key, 1250, acked, errors)) for _ in range(8)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - t0
        assert errors == [] and len(acked) == 10_000 and len(set(acked)) == 10_000
        ids, reports = _journal_ids(sample.root / ".bastion")
        assert set(acked) <= set(ids) and all(r.ok for r in reports)
        print(f"10,000 requests in {took:.1f}s ({10_000 / took:.0f}/s)")

        # 2. kill -9 under load: whatever a client saw acknowledged is in the journal
        acked2: list[str] = []
        errors2: list[str] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_hammer, args=(url, body, key, 100_000, acked2, errors2, stop))
                   for _ in range(6)]
        for t in threads:
            t.start()
        while len(acked2) < 1500:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        ids2, reports2 = _journal_ids(sample.root / ".bastion")
        missing = set(acked2) - set(ids2)
        assert len(acked2) >= 1500 and not missing, f"{len(missing)} acknowledged requests missing"
        assert all(r.ok for r in reports2)  # a torn last line is allowed, a broken chain is not
        assert errors2  # the clients did see the server die
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if proc.stdout:
            out = proc.stdout.read().decode(errors="replace")
            assert key not in out and key.split("_")[-1] not in out  # no key in the server's JSON logs
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            assert lines and all(json.loads(ln)["level"] for ln in lines)
