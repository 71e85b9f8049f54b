"""Drift benchmark: Bastion vs Evidently, alibi-detect and NannyML on the same data.

Generates reference/current Parquet files (20 numeric + 5 categorical columns, planted drifts: mean
shift, variance change, new category), then runs each tool in its own subprocess (peers in their own
venvs) and records wall time, peak RSS (ru_maxrss of the child) and which columns each flagged.

Usage:  PYTHONPATH=src python bench/monitor/run.py --rows 100000 1000000 --repeats 3  (under the bench lock)
        PYTHONPATH=src python bench/monitor/run.py --rows 10000000 --tools bastion-dask --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = HERE / "work"
sys.path.append(str(HERE.parent))  # bench/: _freeze records versions and load
from _freeze import record_environment  # noqa: E402

# Each peer in its own venv (/work/shared/PEERS.md); BENCH_VENVS overrides the folder holding them.
_VENV_ROOT = Path(os.environ.get("BENCH_VENVS", "/work/bench-venvs"))
VENVS = {
    "evidently": _VENV_ROOT / "evidently" / "bin" / "python",
    "alibi": _VENV_ROOT / "alibi-detect" / "bin" / "python",
    "nannyml": _VENV_ROOT / "nannyml" / "bin" / "python",
}
N_NUM, N_CAT = 20, 5
# Planted drifts: num_0 mean shift (+0.5 sd), num_1 variance change (sd x2), cat_0 new category (10% of rows).
DRIFTED = {"num_0", "num_1", "cat_0"}


def make_data(rows: int, seed: int = 42, chunk: int = 1_000_000) -> tuple[Path, Path]:
    """Write reference and current Parquet files in chunks (bounded memory even at 10M rows)."""
    ref_p = WORK / f"ref-{rows}.parquet"
    cur_p = WORK / f"cur-{rows}.parquet"
    if ref_p.exists() and cur_p.exists():
        return ref_p, cur_p
    WORK.mkdir(parents=True, exist_ok=True)
    cats = np.array(["a", "b", "c", "d", "e"])
    for path, current, s in ((ref_p, False, seed), (cur_p, True, seed + 1)):
        writer = None
        tmp = path.with_suffix(".tmp")
        for k, start in enumerate(range(0, rows, chunk)):
            n = min(chunk, rows - start)
            rng = np.random.default_rng([s, k])
            cols: dict[str, pa.Array] = {}
            for i in range(N_NUM):
                loc, scale = float(i), 1.0 + i / 10
                if current and i == 0:
                    loc += 0.5 * scale
                if current and i == 1:
                    scale *= 2.0
                cols[f"num_{i}"] = pa.array(rng.normal(loc, scale, n))
            for j in range(N_CAT):
                idx = rng.choice(5, size=n, p=[0.4, 0.25, 0.15, 0.12, 0.08])
                vals = cats[idx].astype(object)
                if current and j == 0:
                    vals[rng.random(n) < 0.10] = "NEW"
                cols[f"cat_{j}"] = pa.array(vals.astype(str))
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=chunk)
        assert writer is not None
        writer.close()
        tmp.replace(path)
    return ref_p, cur_p


# Every script that works on DataFrames loads them with this one helper, so all tools hold the same data
# in the same dtypes: float64 and pandas' Arrow-backed ``str`` (the pandas 3 default; pandas 2.3 venvs opt
# in with ``future.infer_string``, else their strings would be Python objects, about 2x the memory).
# It also records the process's peak RSS after loading and its RSS once loaded, so each tool's own
# working memory (peak minus loaded) can be told apart from the cost of holding the data.
LOAD = r"""
import resource, time
import pandas as pd
if int(pd.__version__.split(".")[0]) < 3:
    pd.set_option("future.infer_string", True)
def _rss_mb():
    with open("/proc/self/status") as fh:
        for ln in fh:
            if ln.startswith("VmRSS"):
                return int(ln.split()[1]) / 1024
def load(a, b):
    t0 = time.perf_counter()
    ref = pd.read_parquet(a); cur = pd.read_parquet(b)
    mem = {"load_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "loaded_rss_mb": _rss_mb(),
           "dtypes": sorted({str(t) for t in ref.dtypes})}
    return ref, cur, time.perf_counter() - t0, mem
"""

# Each script prints one JSON line: {"seconds": compute time, "flagged": [...], "notes": ...}.
BASTION = r"""
import json, sys, time
from bastion.monitor.drift.run import compute_drift
ref, cur, engine = sys.argv[1], sys.argv[2], sys.argv[3]
t = time.perf_counter()
rep = compute_drift(ref, cur, engine=None if engine == "local" else engine)
dt = time.perf_counter() - t
tests = sorted({k for f in rep.features for k in f.tests})
print(json.dumps({"seconds": dt, "flagged": rep.drifted_features, "tests": tests, "verdict": rep.verdict}))
"""

# The same computation on DataFrames loaded first (as the peers are timed): compute only.
BASTION_MEM = LOAD + r"""
import json, sys, time
ref, cur, load_s, mem = load(sys.argv[1], sys.argv[2])
from bastion.monitor.drift.run import compute_drift
t = time.perf_counter()
rep = compute_drift(ref, cur)
dt = time.perf_counter() - t
tests = sorted({k for f in rep.features for k in f.tests})
print(json.dumps({"seconds": dt, "flagged": rep.drifted_features, "tests": tests, "verdict": rep.verdict,
                  "load_seconds": load_s, **mem}))
"""

EVIDENTLY = LOAD + r"""
import json, sys, time
import pandas as pd
ref, cur, load_s, mem = load(sys.argv[1], sys.argv[2])
from evidently import Report, Dataset, DataDefinition
from evidently.presets import DataDriftPreset
num = [c for c in ref.columns if c.startswith("num_")]; cat = [c for c in ref.columns if c.startswith("cat_")]
dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
t = time.perf_counter()
r = Report([DataDriftPreset()])
snap = r.run(Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
d = snap.dict()
dt = time.perf_counter() - t
flagged = []
for m in d["metrics"]:
    name = m.get("metric_name", "")
    if name.startswith("ValueDrift("):
        col = name.split("column=")[1].split(",")[0]
        thr = float(name.split("threshold=")[1].rstrip(")")) if "threshold=" in name else 0.1
        method = name.split("method=")[1].split(",")[0] if "method=" in name else ""
        v = m["value"]
        is_p = "p_value" in method or "test" in method.lower() and "distance" not in method.lower()
        if (v < thr) if is_p else (v >= thr):
            flagged.append(col)
print(json.dumps({"seconds": dt, "load_seconds": load_s, "flagged": sorted(flagged), **mem}))
"""

ALIBI = LOAD + r"""
import json, sys, time
import numpy as np, pandas as pd
ref, cur, load_s, mem = load(sys.argv[1], sys.argv[2])
t0 = time.perf_counter()
from alibi_detect.cd import TabularDrift
cols = list(ref.columns)
cat_idx = [i for i, c in enumerate(cols) if c.startswith("cat_")]
codes = {}
def enc(df):
    out = np.empty((len(df), len(cols)), dtype=np.float64)
    for i, c in enumerate(cols):
        if i in cat_idx:
            m = codes.setdefault(c, {v: k for k, v in enumerate(sorted(set(ref[c]) | set(cur[c])))})
            out[:, i] = df[c].map(m).to_numpy()
        else:
            out[:, i] = df[c].to_numpy()
    return out
xr, xc = enc(ref), enc(cur)
load_s += time.perf_counter() - t0  # label-encoding into numpy counts as loading
t = time.perf_counter()
cd = TabularDrift(xr, p_val=0.05, categories_per_feature={i: None for i in cat_idx})
pred = cd.predict(xc, drift_type="feature")
dt = time.perf_counter() - t
flagged = [cols[i] for i, v in enumerate(pred["data"]["is_drift"]) if v]
print(json.dumps({"seconds": dt, "load_seconds": load_s, "flagged": sorted(flagged), **mem}))
"""

NANNYML = LOAD + r"""
import json, sys, time
import pandas as pd
ref, cur, load_s, mem = load(sys.argv[1], sys.argv[2])
import nannyml as nml
cols = list(ref.columns)
t = time.perf_counter()
# NannyML's defaults: Jensen-Shannon (continuous), L-infinity (categorical), 10 chunks per period;
# thresholds come from the spread over reference chunks (with one chunk that spread is 0 and every
# column alerts, so the default chunking is the fair setting). A column is flagged if any chunk alerts.
calc = nml.UnivariateDriftCalculator(column_names=cols)
calc.fit(ref)
res = calc.calculate(cur).filter(period="analysis").to_df()
dt = time.perf_counter() - t
flagged = sorted({c for (c, m, k) in res.columns if k == "alert" and c in cols and bool(res[(c, m, k)].any())})
print(json.dumps({"seconds": dt, "load_seconds": load_s, "flagged": flagged, **mem}))
"""

SCRIPTS = {
    "bastion": BASTION,
    "bastion-dask": BASTION,
    "bastion-mem": BASTION_MEM,
    "evidently": EVIDENTLY,
    "alibi": ALIBI,
    "nannyml": NANNYML,
}


def run_measured(tool: str, ref: Path, cur: Path) -> dict:
    """Run under /usr/bin/time -v for the child's own peak RSS."""
    py = VENVS.get(tool, Path(sys.executable))
    args = ["/usr/bin/time", "-v", str(py), "-c", SCRIPTS[tool], str(ref), str(cur)]
    if tool in ("bastion", "bastion-dask"):
        args.append("dask" if tool == "bastion-dask" else "local")
    env = dict(os.environ, NML_DISABLE_USAGE_LOGGING="1", PYTHONWARNINGS="ignore")
    t = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    rss_kb = None
    cpu_s = 0.0
    for ln in proc.stderr.splitlines():
        if "Maximum resident set size" in ln:
            rss_kb = int(ln.split(":")[1])
        if "User time (seconds)" in ln or "System time (seconds)" in ln:
            cpu_s += float(ln.split(":")[1])
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("\t")]
        return {"tool": tool, "error": tail[-1] if tail else f"exit {proc.returncode}"}
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    doc = json.loads(line)
    # cpu_seconds: user + system time of the whole child (imports and loading included), against the load
    doc.update(tool=tool, wall_seconds=wall, cpu_seconds=cpu_s, peak_rss_mb=(rss_kb or 0) / 1024)
    return doc


def _median(runs: list[dict], key: str) -> float | None:
    vals = [x[key] for x in runs if x.get(key) is not None]
    return statistics.median(vals) if vals else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--tools", nargs="+", default=["bastion", "alibi", "nannyml", "evidently"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--evidently-repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results.json"))
    a = ap.parse_args()
    venvs = {"bastion": sys.executable} | {t: str(VENVS[t]) for t in a.tools if t in VENVS}
    env = record_environment(HERE, venvs)
    results = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else []
    for rows in a.rows:
        ref, cur = make_data(rows)
        reps = {t: (a.evidently_repeats if t == "evidently" else a.repeats) for t in a.tools}
        runs: dict[str, list[dict]] = {t: [] for t in a.tools}
        # Repeats are interleaved across tools, so load from other users of the machine hits all alike.
        for r in range(max(reps.values())):
            for tool in a.tools:
                if r < reps[tool]:
                    runs[tool].append(run_measured(tool, ref, cur))
        for tool in a.tools:
            ok = [x for x in runs[tool] if "error" not in x]
            if not ok:
                rec = {"rows": rows, "tool": tool, "error": runs[tool][0]["error"]}
            else:
                rec = {
                    "rows": rows,
                    "tool": tool,
                    "runs": len(ok),
                    "seconds_median": statistics.median(x["seconds"] for x in ok),
                    "seconds_all": [round(x["seconds"], 3) for x in ok],
                    "wall_median": statistics.median(x["wall_seconds"] for x in ok),
                    "cpu_seconds_median": statistics.median(x["cpu_seconds"] for x in ok),
                    "cpu_seconds_all": [round(x["cpu_seconds"], 2) for x in ok],
                    "peak_rss_mb_median": statistics.median(x["peak_rss_mb"] for x in ok),
                    "flagged": ok[0]["flagged"],
                    "caught_all_planted": DRIFTED <= set(ok[0]["flagged"]),
                    "false_alarms": sorted(set(ok[0]["flagged"]) - DRIFTED),
                    "extra": {k: v for k, v in ok[0].items() if k in ("tests", "verdict", "dtypes")},
                    "load_seconds_median": _median(ok, "load_seconds"),
                    "load_peak_mb_median": _median(ok, "load_peak_mb"),
                    "loaded_rss_mb_median": _median(ok, "loaded_rss_mb"),
                    "date": time.strftime("%Y-%m-%d"),
                    "commit": env.commit,
                    "load_average_start": env.load_start,
                }
            print(json.dumps(rec), flush=True)
            results = [x for x in results if not (x["rows"] == rows and x["tool"] == tool)] + [rec]
            Path(a.out).write_text(json.dumps(results, indent=2))
    env.finish()
    print(env.markdown())


if __name__ == "__main__":
    main()
