"""Serving load time: how long `load_trusted` (evaluate + load) takes for a signed, gated, promoted model.

Run with a Bastion source tree first on PYTHONPATH; prints one JSON line (median of N loads, and the number
of signature / attestation verifications and artifact hashes per load). ``load_bench.py N [RESULTS_DIR]``:
versions, commit and load go to RESULTS_DIR (default: this folder), see bench/_freeze.py.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/: _freeze records versions and load
from _freeze import record_environment


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    env = record_environment(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parent, {"bastion": sys.executable})
    import bastion.gates.attestation as attestation
    import bastion.gates.signatures as signatures
    from bastion.project import open_project
    from bastion.serve._sample import build_sample_project
    from bastion.serve.loader import load_trusted
    from bastion.store import blobs

    root = Path(tempfile.mkdtemp(prefix="trust-bench-")) / "proj"
    build_sample_project(root, versions=1, rows=1200)
    counts = {"verify_version": 0, "verify_attestation": 0, "blob_hashes": 0}
    real_sig, real_att = signatures.verify_version, attestation.verify_attestation
    real_get, real_mat = blobs.LocalBlobStore.get_bytes, blobs.LocalBlobStore.materialize

    def sig(*a, **k):  # type: ignore[no-untyped-def]
        counts["verify_version"] += 1
        return real_sig(*a, **k)

    def att(*a, **k):  # type: ignore[no-untyped-def]
        counts["verify_attestation"] += 1
        return real_att(*a, **k)

    def get(self, digest, **k):  # type: ignore[no-untyped-def]
        counts["blob_hashes"] += 1
        return real_get(self, digest, **k)

    def mat(self, digest, dest, **k):  # type: ignore[no-untyped-def]
        counts["blob_hashes"] += 1
        return real_mat(self, digest, dest, **k)

    signatures.verify_version = sig
    attestation.verify_attestation = att
    blobs.LocalBlobStore.get_bytes = get
    blobs.LocalBlobStore.materialize = mat
    p = open_project(root)
    load_trusted(p, "sample@production")  # warm imports and caches
    times, cpu = [], []
    for k in counts:
        counts[k] = 0
    for _ in range(n):
        c0, t0 = time.process_time(), time.perf_counter()
        load_trusted(p, "sample@production")
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    p.close()
    shutil.rmtree(root.parent, ignore_errors=True)  # the scratch project
    env.finish()
    print(json.dumps({"median_ms": round(statistics.median(times) * 1000, 1), "n": n,
                      "runs_ms": [round(t * 1000, 1) for t in times],
                      "cpu_median_ms": round(statistics.median(cpu) * 1000, 1),
                      "per_load": {k: v / n for k, v in counts.items()}, "environment": env.markdown()}))


if __name__ == "__main__":
    main()
