"""Protection throughput (tokenize + encrypt): MB/s per core (1 worker, CPU time) and with every core (wall time).

Run: .venv/bin/python bench/pii/protect_bench.py [--rows 200000 400000] [--workers 1 2] [--before-src DIR]
``--before-src`` points at another checkout's ``src`` (e.g. the commit before a change) to time it in the same run.
Writes a markdown table to stdout; input MB = in-memory Arrow bytes of the input.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import os, sys, time, resource, json
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from bastion.crypto.keys import Keyring, LocalMasterKey
from bastion.data.pii.interface import ColumnFinding, TableScanReport
from bastion.data.protect import protect_file
from bastion.engine import LocalEngine
rows, tmp, mode, workers = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
engine = LocalEngine(workers) if workers > 1 else LocalEngine()
src = os.path.join(tmp, f"raw{rows}.parquet")
rng = np.random.default_rng(0)
first = np.array(["James","Mary","Robert","Patricia","John","Jennifer","Michael","Linda"])
last = np.array(["Smith","Johnson","Williams","Brown","Jones","Garcia","Miller","Davis"])
w = pq.ParquetWriter(src, pa.schema([("name", pa.string()), ("email", pa.string()), ("ssn", pa.string()),
                                       ("card", pa.string())]))
for s in range(0, rows, 100_000):
    n = min(100_000, rows - s); i = np.arange(s, s + n)
    w.write_table(pa.table({
        "name": pa.array([f"{a} {b}" for a, b in zip(rng.choice(first, n), rng.choice(last, n))]),
        "email": pa.array([f"user{k}@example.com" for k in i]),
        "ssn": pa.array([f"{100 + k % 500:03d}-{10 + k % 89:02d}-{1000 + k % 8999:04d}" for k in i]),
        "card": pa.array([f"4111 1111 {k % 10000:04d} {(k * 7) % 10000:04d}" for k in i])}))
w.close()
mem_bytes = pq.read_table(src).nbytes
scan = TableScanReport("b", tuple(ColumnFinding(c, e, "column", 1, 1) for c, e in
                                  [("name","PERSON"),("email","EMAIL"),("ssn","US_SSN"),("card","CREDIT_CARD")]), 0, 0)
ring = Keyring(os.path.join(tmp, f"dk-{mode}-{rows}-{os.getpid()}.json"),
               LocalMasterKey(os.urandom(32), source="bench"))
policy = {"tokenize": {"columns": {"name": "tokenize", "email": "tokenize", "ssn": "keep", "card": "keep"}},
          "encrypt": {"columns": {"name": "keep", "email": "keep", "ssn": "encrypt", "card": "encrypt"}},
          "both": {"columns": {"name": "tokenize", "email": "tokenize", "ssn": "encrypt", "card": "encrypt"}}}[mode]
c0 = time.process_time(); t0 = time.perf_counter()
rep = protect_file(src, os.path.join(tmp, "out.parquet"), policy=policy, keyring=ring, scan=scan, write_report=False,
                   engine=engine)
cpu = time.process_time() - c0; wall = time.perf_counter() - t0
print(json.dumps({"rows": rows, "mode": mode, "workers": workers, "file_mb": os.path.getsize(src) / 1e6,
                  "arrow_mb": mem_bytes / 1e6, "cpu_s": cpu, "wall_s": wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 400_000])
    ap.add_argument("--modes", nargs="+", default=["tokenize", "encrypt", "both"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--before-src", help="another checkout's src/ to time first (1 worker), labelled 'before'")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import json
    import statistics
    from pathlib import Path

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent))
    from _freeze import record_environment

    recorded = record_environment(here, {"bastion": sys.executable})

    variants = [("after", None, w) for w in args.workers]
    if args.before_src:
        variants.insert(0, ("before", args.before_src, 1))
    print("| code | workers | rows | operators | input Arrow MB | CPU s (this process) | wall s | "
          "MB/s per core (CPU) | MB/s wall | peak RSS MB |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            for mode in args.modes:
                for label, src_path, workers in variants:
                    env = {**os.environ, "OMP_NUM_THREADS": "1"}
                    if src_path:
                        env["PYTHONPATH"] = src_path
                    runs = []
                    for _ in range(args.repeat):
                        out = subprocess.run(
                            [sys.executable, "-c", CHILD, str(rows), tmp, mode, str(workers)],
                            capture_output=True, text=True, env=env,
                        )
                        if out.returncode:
                            sys.exit(f"{label} run failed:\n{out.stderr[-3000:]}")
                        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    cpu = statistics.median(r["cpu_s"] for r in runs)
                    wall = statistics.median(r["wall_s"] for r in runs)
                    r = runs[0]
                    per_core = f"{r['arrow_mb'] / cpu:.1f}" if workers == 1 else "–"
                    print(
                        f"| {label} | {workers} | {rows:,} | {mode} | {r['arrow_mb']:.1f} | {cpu:.2f} | {wall:.2f} | "
                        f"{per_core} | {r['arrow_mb'] / wall:.1f} | {max(x['peak_rss_mb'] for x in runs):.0f} |"
                    )
                    sys.stdout.flush()
    recorded.finish()
    print("\n" + recorded.markdown())


if __name__ == "__main__":
    main()
