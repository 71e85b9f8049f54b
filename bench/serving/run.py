"""Serving benchmark: Bastion (every security layer on) against `mlflow models serve` and a bare FastAPI app
(pydantic + predict, the floor), same 30-feature scikit-learn model, same worker count, wrk on loopback.

Run from the repository root with Bastion's venv (MLflow runs from ``bench/.venv-mlflow``)::

    .venv/bin/python bench/serving/run.py                 # writes bench/serving/RESULTS.md
    .venv/bin/python bench/serving/run.py --duration 3 --rounds 1 --workers 1   # quick look

Rounds interleave the servers (A B C, A B C, …) so a noisy neighbour hits all of them alike; the table
shows medians over rounds. Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.append(str(HERE.parent))  # bench/: _freeze records versions, load and pip freeze of every venv used
from _freeze import Environment, record_environment  # noqa: E402

WORK = HERE / "work"  # gitignored (bench/**/work/)
# Bastion's interpreter: the repository's .venv, else the one running this script (with REPO/src first on
# the path, so the working tree is what runs). MLflow's venv: BENCH_MLFLOW_VENV, else the shared
# /work/bench-venvs/mlflow when it exists, else bench/.venv-mlflow.
BASTION_PY = REPO / ".venv" / "bin" / "python" if (REPO / ".venv" / "bin" / "python").exists() else Path(sys.executable)
_SHARED_MLFLOW = Path("/work/bench-venvs/mlflow")
MLFLOW_VENV = Path(os.environ.get("BENCH_MLFLOW_VENV", _SHARED_MLFLOW if (_SHARED_MLFLOW / "bin" / "python").exists()
                                  else REPO / "bench" / ".venv-mlflow"))
MLFLOW_PY = MLFLOW_VENV / "bin" / "python"
N_FEATURES = 30
# uvicorn's supervisor kills a worker that does not answer its health ping within this many seconds (default
# 5) and starts another; on a loaded machine a worker's start-up can take longer. Bastion's runner uses 30 s
# (bastion.serve.runner); the peers get the same here. It plays no part once the workers serve.
HEALTHCHECK_S = 30
LUA = """
local f = io.open(os.getenv("BODY_FILE"), "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("API_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(*, mlflow: bool = True) -> dict[str, Any]:
    """The sample project (signed, scanned, gated, promoted), an API key, the model exported for the peers."""
    sys.path.insert(0, str(REPO / "src"))
    from bastion.project import open_project
    from bastion.serve import create_api_key
    from bastion.serve._sample import build_sample_project

    root = WORK / "proj"
    if root.exists():
        shutil.rmtree(root)
    WORK.mkdir(parents=True, exist_ok=True)
    sample = build_sample_project(root, versions=1, n_features=N_FEATURES, rows=4000, categorical=False,
                                  protect_email=False)
    p = open_project(root)
    key = create_api_key(p, "bench", ["predict"]).key
    # a copy of its own: the project's model cache is Bastion's, and a server may replace it while the bare
    # app of the next worker count still needs the file
    skops_path = WORK / "model.skops"
    shutil.copyfile(p.model_path(sample.refs[0]), skops_path)
    p.close()
    row = {f: round(float(v), 6) for f, v in sample.frame[list(sample.features)].iloc[0].items()}
    rows100 = [{f: round(float(v), 6) for f, v in r.items()}
               for r in sample.frame[list(sample.features)].iloc[:100].to_dict("records")]
    bodies = {
        "bastion-1": {"instances": [row]}, "bastion-100": {"instances": rows100},
        "bare-1": {"instances": [row]}, "bare-100": {"instances": rows100},
        # MLflow's native tensor input: the same numbers, as the array the model was fitted on
        "mlflow-1": {"inputs": [[row[f] for f in sample.features]]},
        "mlflow-100": {"inputs": [[r[f] for f in sample.features] for r in rows100]},
    }
    for name, body in bodies.items():
        (WORK / f"body-{name}.json").write_text(json.dumps(body))
    (WORK / "post.lua").write_text(LUA)
    if not mlflow:
        return {"root": root, "key": key, "skops": skops_path}
    mlflow_model = WORK / "mlflow-model"
    if mlflow_model.exists():
        shutil.rmtree(mlflow_model)
    subprocess.run([str(MLFLOW_PY), "-c", (
        "import sys, skops.io as sio, mlflow.sklearn\n"
        "m = sio.load(sys.argv[1], trusted=sio.get_untrusted_types(file=sys.argv[1]))\n"
        "mlflow.sklearn.save_model(m, sys.argv[2], pip_requirements=['scikit-learn'])\n"
    ), str(skops_path), str(mlflow_model)], check=True, capture_output=True)
    return {"root": root, "key": key, "skops": skops_path, "mlflow_model": mlflow_model}


def start(server: str, workers: int, prep: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start one server; returns (process, predict URL, API key or '')."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["PYTHONPATH"] = str(REPO / "src")
    log = open(WORK / f"{server}-{workers}.log", "wb")  # lives as long as the server
    if server.startswith("bastion"):
        cmd = [str(BASTION_PY), "-m", "bastion.cli", "serve", "sample@production", "--port", str(port), "--workers",
               str(workers), "--project", str(prep["root"]), "--rate", "1000000", "--burst", "100000"]
        if server == "bastion-fsync":
            cmd += ["--audit-durability", "fsync"]
        if server == "bastion-sklearn":  # without the linear fast path: scikit-learn's predict_proba per request
            env["BASTION_SKLEARN_PREDICT"] = "1"
        url, key = f"http://127.0.0.1:{port}/v1/models/sample:predict", prep["key"]
    elif server == "bare":
        env.update(BARE_MODEL=str(prep["skops"]), BARE_N_FEATURES=str(N_FEATURES))
        # `-m uvicorn`, not `python bare_app.py`: a spawned worker re-runs a *script* main (imports, model
        # load) before it can answer the supervisor's health ping, and a worker silent for
        # --timeout-worker-healthcheck seconds is killed and respawned, forever, on a loaded machine (the
        # 2-worker "hang"). A `-m` main is not re-run.
        cmd = [str(BASTION_PY), "-m", "uvicorn", "bare_app:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--log-level", "info", "--no-access-log",
               "--timeout-worker-healthcheck", str(HEALTHCHECK_S)]
        url, key = f"http://127.0.0.1:{port}/v1/models/sample:predict", ""
    else:
        cmd = [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(prep["mlflow_model"]),
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
        env["PATH"] = f"{MLFLOW_VENV / 'bin'}:{env.get('PATH', '')}"
        env["UVICORN_TIMEOUT_WORKER_HEALTHCHECK"] = str(HEALTHCHECK_S)  # mlflow runs the `uvicorn` command
        env.pop("PYTHONPATH", None)
        url, key = f"http://127.0.0.1:{port}/invocations", ""
    proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    body = (WORK / f"body-{server.split('-')[0]}-1.json").read_bytes()
    deadline = time.monotonic() + 180
    while True:
        try:
            req = urllib.request.Request(url, data=body, headers={
                "Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})})
            with urllib.request.urlopen(req, timeout=5) as r:
                # every worker up, not just the first (each uvicorn worker logs this line once)
                if r.status == 200 and _started(server, workers) >= workers:
                    return proc, url, key
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            tail = (WORK / f"{server}-{workers}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server} did not start; see {WORK / f'{server}-{workers}.log'}:\n{tail}")
        time.sleep(0.5)


def _started(server: str, workers: int) -> int:
    return (WORK / f"{server}-{workers}.log").read_text(errors="replace").count("Application startup complete")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _ms(s: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        raise ValueError(f"cannot read wrk latency {s!r}")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(url: str, key: str, body_file: Path, conc: int, seconds: float) -> dict[str, float]:
    env = {**os.environ, "BODY_FILE": str(body_file), "API_KEY": key}
    cmd = ["wrk", f"-t{min(conc, 2)}", f"-c{conc}", f"-d{max(1, round(seconds))}s", "--latency",
           "-s", str(WORK / "post.lua"), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    dist = out.split("Latency Distribution", 1)[1]  # the "+/- Stdev" column also holds "NN.50%" values
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", dist, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", dist, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    n_err = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": n_err, "load": os.getloadavg()[0]}


ALL_SCENARIOS = [(1, 1), (8, 1), (32, 1), (8, 100)]  # (concurrency, rows per request)


ALL_SERVERS = ["mlflow", "bare", "bastion", "bastion-fsync", "bastion-sklearn"]


@contextlib.contextmanager
def bench_lock(path: str | None) -> Iterator[None]:
    """Hold ``flock(path)`` (the shared bench lock) for one worker count's servers and rounds."""
    if not path:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run(workers_list: list[int], duration: float, rounds: int,
        scenarios: list[tuple[int, int]] = ALL_SCENARIOS, servers: list[str] = ALL_SERVERS,
        lock: str | None = None) -> list[dict[str, Any]]:
    prep = prepare(mlflow="mlflow" in servers)
    results: list[dict[str, Any]] = []
    for workers in workers_list:
        procs: dict[str, tuple[subprocess.Popen[bytes], str, str]] = {}
        with bench_lock(lock):
            try:
                for s in servers:
                    procs[s] = start(s, workers, prep)
                for s in servers:  # warm up every server (imports, first predictions, JIT-free caches)
                    _, url, key = procs[s]
                    wrk(url, key, WORK / f"body-{s.split('-')[0]}-1.json", 8, 2)
                raw: dict[tuple[str, int, int], list[dict[str, float]]] = {}
                for i in range(rounds):
                    for conc, rows in scenarios:
                        # interleaved, and the order reversed every other round: no server always runs right
                        # after the same neighbour (or first, on a cold machine)
                        for s in (servers if i % 2 == 0 else servers[::-1]):
                            if s in ("bastion-fsync", "bastion-sklearn") and (conc, rows) != (8, 1):
                                continue
                            _, url, key = procs[s]
                            r = wrk(url, key, WORK / f"body-{s.split('-')[0]}-{rows}.json", conc, duration)
                            raw.setdefault((s, conc, rows), []).append(r)
                            print(f"w={workers} {s:14s} c={conc:<3d} rows={rows:<4d} {r['rps']:8.0f} req/s "
                                  f"p50 {r['p50']:6.2f} ms p99 {r['p99']:7.2f} ms errors {r['errors']:.0f} "
                                  f"load {r['load']:.2f}", flush=True)
                for (s, conc, rows), rs in raw.items():
                    results.append({
                        "server": s, "workers": workers, "concurrency": conc, "rows": rows,
                        "rps": statistics.median(r["rps"] for r in rs),
                        "p50_ms": statistics.median(r["p50"] for r in rs),
                        "p99_ms": statistics.median(r["p99"] for r in rs), "errors": sum(r["errors"] for r in rs),
                        "runs": [r["rps"] for r in rs], "runs_p99": [r["p99"] for r in rs],
                        "loads": [r["load"] for r in rs],
                    })
            finally:
                for proc, _, _ in procs.values():
                    stop(proc)
    return results


def render(results: list[dict[str, Any]], args: argparse.Namespace, took: float, env: Environment | None = None) -> str:
    def get(s: str, w: int, c: int, rows: int) -> dict[str, Any] | None:
        return next((r for r in results if (r["server"], r["workers"], r["concurrency"], r["rows"]) == (s, w, c, rows)),
                    None)

    loads = [x for r in results for x in r.get("loads", [])] or [0.0]
    lines = ["# Serving benchmark", "",
             f"Command: `python bench/serving/run.py --duration {args.duration:g} --rounds {args.rounds} "
             f"--workers {' '.join(map(str, args.workers))} --scenarios {' '.join(args.scenarios)} "
             f"--servers {' '.join(args.servers)}{' --lock ' + args.lock if args.lock else ''}` "
             f"({took / 60:.1f} min).", "",
             f"Machine: {platform.platform()}, {os.cpu_count()} cores shared with other work (medians of "
             f"{args.rounds} interleaved rounds of {args.duration:g} s each; wrk on 127.0.0.1). 1-minute load "
             f"average after each measurement: median {statistics.median(loads):.1f}, range {min(loads):.1f}-"
             f"{max(loads):.1f} (it includes the servers under test and wrk).", "",
             f"Versions: {versions()}.", "",
             *([env.markdown(), ""] if env is not None else []),
             f"Model: scikit-learn LogisticRegression on {N_FEATURES} numeric features (skops), single-row "
             "requests unless the rows column says 100. Bastion runs with every layer on: API-key auth, "
             "generated validation (types, ranges, required, no unknown fields, depth/size limits), rate and "
             "concurrency limit (shared by the workers), group-committed audit journal (`write` durability unless "
             "marked fsync), prediction log, Prometheus metrics, alias polling, and the connection guard "
             "(header-read timeout, per-client and total connection caps). Bastion computes this binary "
             "LogisticRegression with scikit-learn's own arithmetic minus its per-call input checks (checked "
             "bit-identical at load; docs/serving.md, Performance); with several workers each takes one new "
             "connection per wake-up. The bare app parses with pydantic and calls `predict`; MLflow is "
             "`mlflow models serve --env-manager local` (its own venv). Every server's workers get 30 s for "
             "uvicorn's health ping (`--timeout-worker-healthcheck`).", "",
             "| workers | server | concurrency | rows | req/s | p50 ms | p99 ms | errors |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: (r["workers"], r["rows"], r["concurrency"], r["server"])):
        lines.append(f"| {r['workers']} | {r['server']} | {r['concurrency']} | {r['rows']} | {r['rps']:.0f} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    def ratio(a: dict[str, Any], b: dict[str, Any], key: str = "runs") -> str:
        # the median of per-round ratios: servers of one round ran back to back under the same load
        rs = [x / y for x, y in zip(a[key], b[key], strict=True) if y]
        return f"{statistics.median(rs):.2f} ({', '.join(f'{x:.2f}' for x in rs)})"

    lines += ["", "## Bars (concurrency 8, single row)", "",
              "Each cell: the median of the per-round ratios, then the ratio in every round. Bars: issue 6 "
              "(>= 2x MLflow) and issue 15 (>= 1.0x the bare app with every layer on, p99 <= 1.25x).", "",
              "| workers | Bastion / MLflow req/s (bar >= 2.0) | Bastion / bare req/s (bar >= 1.0) | "
              "Bastion p99 / bare p99 (bar <= 1.25) | fsync journal / bare req/s |", "|---:|---|---|---|---|"]
    for w in sorted({r["workers"] for r in results}):
        b, m, f = get("bastion", w, 8, 1), get("mlflow", w, 8, 1), get("bare", w, 8, 1)
        fs = get("bastion-fsync", w, 8, 1)
        if not (b and f):
            continue
        lines.append(f"| {w} | {ratio(b, m) if m else '-'} | {ratio(b, f)} | {ratio(b, f, 'runs_p99')} | "
                     f"{ratio(fs, f) if fs else '-'} |")
    return "\n".join(lines) + "\n"


def versions() -> str:
    """uvicorn and the frameworks as each server runs them (PEERS.md: never quote a ratio resting on
    uvicorn 0.54.0's TCP_NODELAY bug)."""
    code = ("import importlib.metadata as m\n"
            "print(' '.join(f'{p} {m.version(p)}' for p in sys.argv[1:]))")
    out = []
    for who, py, pkgs in (("bastion/bare", BASTION_PY, ["uvicorn", "fastapi", "starlette", "pydantic"]),
                          ("mlflow", MLFLOW_PY, ["mlflow", "uvicorn", "fastapi"])):
        try:
            text = subprocess.run([str(py), "-c", "import sys\n" + code, *pkgs], capture_output=True, text=True,
                                  check=True, timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            text = "unknown"
        out.append(f"{who}: {text}")
    return "; ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--scenarios", nargs="+", default=[f"{c}x{r}" for c, r in ALL_SCENARIOS],
                    help="CONCURRENCYxROWS, e.g. 8x1 (the bars' scenario)")
    ap.add_argument("--servers", nargs="+", default=ALL_SERVERS[:4], choices=ALL_SERVERS)
    ap.add_argument("--lock", default=None,
                    help="hold flock(LOCK) per worker count, e.g. /tmp/bastion-bench.lock (shared machines)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    if "mlflow" in args.servers and not MLFLOW_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(MLFLOW_PY), "-m", "pip", "install", "-q", "mlflow", "skops"], check=True)
    # pip freeze of both venvs, commit, machine and load, in their own folder (bench/serving holds other
    # benchmarks' files too)
    env = record_environment(HERE, {"bastion": str(BASTION_PY), "mlflow": str(MLFLOW_PY)})
    t0 = time.time()
    scenarios = [(int(c), int(r)) for c, r in (x.split("x") for x in args.scenarios)]
    results = run(args.workers, args.duration, args.rounds, scenarios, args.servers, args.lock)
    env.finish()
    text = render(results, args, time.time() - t0, env)
    Path(args.out).write_text(text)
    (WORK / "results.json").write_text(json.dumps(results, indent=2))
    print(text)


if __name__ == "__main__":
    main()
