"""ONNX serving benchmark: Bastion serving an ONNX model (every security layer on) against a bare FastAPI +
onnxruntime app and `mlflow models serve` (pyfunc) on the same ONNX model, single row at concurrency 8.

Run from the repository root (MLflow runs from ``BENCH_MLFLOW_VENV``, with onnx and onnxruntime in it)::

    BENCH_MLFLOW_VENV=/work/bench-venvs/mlflow flock /tmp/bastion-bench.lock \\
        /work/venv/bin/python bench/serving/onnx_bench.py --duration 5 --rounds 3

Writes ``bench/serving/onnx_results.json`` and the ONNX section of ``bench/serving/RESULTS.md`` (between
markers). Rounds interleave the servers so a noisy neighbour hits all of them alike; medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as base  # noqa: E402  (the serving benchmark's wrk driver, server stop and versions helpers)

sys.path.insert(0, str(HERE.parents[1]))
from bench._freeze import Environment, record_environment  # noqa: E402

REPO = base.REPO
WORK = HERE / "work" / "onnx"  # gitignored (bench/**/work/)
base.WORK = WORK  # its wrk driver reads post.lua from here
N_FEATURES = base.N_FEATURES
BEGIN, END = "<!-- onnx-bench:begin -->", "<!-- onnx-bench:end -->"
ENV_DIR = HERE / "onnx"  # environment.txt and freeze-<venv>.txt of the last run


def prepare() -> dict[str, Any]:
    """A project with an ONNX model (skl2onnx pipeline on 30 features) registered, gated, signed, promoted."""
    import shutil

    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from bastion.crypto.signing.keys import PASSPHRASE_ENV, init_signing_key, load_signing_key
    from bastion.gates.run import run_gate
    from bastion.gates.signatures import sign_version
    from bastion.project import init_project
    from bastion.serve import create_api_key
    from bastion.serve._sample import SAMPLE_PASSPHRASE, sample_frame, sample_policy

    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    df = sample_frame(2000, N_FEATURES, categorical=False)
    features = [f"f{i}" for i in range(N_FEATURES)]
    train, hold = df.iloc[:1500].reset_index(drop=True), df.iloc[1500:].reset_index(drop=True)
    x = train[features].to_numpy(dtype=np.float32)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))]).fit(x, train["label"])
    onx = to_onnx(pipe, x[:1], options={id(pipe[-1]): {"zipmap": False}}, target_opset=17)
    model_path = WORK / "model.onnx"
    model_path.write_bytes(onx.SerializeToString())

    root = WORK / "proj"
    p = init_project(root)
    dv = p.register_dataset(train, name="sample-train")
    (root / "bastion-policy.yaml").write_text(sample_policy("label"), encoding="utf-8")
    os.environ[PASSPHRASE_ENV] = SAMPLE_PASSPHRASE
    init_signing_key(p, "release", passphrase=SAMPLE_PASSPHRASE)
    key = load_signing_key(p, "release", passphrase=SAMPLE_PASSPHRASE)
    mv = p.log_model(model_path, name="sample", datasets=[dv.ref])
    assert mv.flavor == "onnx", mv.flavor
    sign_version(p, mv.ref, key=key)
    result = run_gate(p, mv.ref, root / "bastion-policy.yaml", hold, "label")
    assert result.passed, result.failed_required
    p.promote(mv.ref, alias="production")
    api_key = create_api_key(p, "bench", ["predict"]).key
    p.close()

    row = {f: float(hold[f].iloc[0]) for f in features}
    (WORK / "body-bastion-1.json").write_text(json.dumps({"instances": [row]}))
    (WORK / "body-bare-1.json").write_text(json.dumps({"instances": [row]}))
    (WORK / "body-mlflow-1.json").write_text(json.dumps({"inputs": [[row[f] for f in features]]}))
    (WORK / "post.lua").write_text(base.LUA)
    mlflow_model = WORK / "mlflow-model"
    subprocess.run([str(base.MLFLOW_PY), "-c", (
        "import sys, numpy as np, onnx, mlflow.onnx\n"
        "from mlflow.models import infer_signature\n"
        "m = onnx.load(sys.argv[1])\n"
        "sig = infer_signature(np.zeros((1, int(sys.argv[3])), dtype=np.float32))\n"
        "mlflow.onnx.save_model(m, sys.argv[2], signature=sig, pip_requirements=['onnxruntime'])\n"
    ), str(model_path), str(mlflow_model), str(N_FEATURES)], check=True, capture_output=True)
    return {"root": root, "key": api_key, "onnx": model_path, "mlflow_model": mlflow_model, "row": row}


def start(server: str, workers: int, prep: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str, str]:
    port = base.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["PYTHONPATH"] = str(REPO / "src")
    log = open(WORK / f"{server}-{workers}.log", "wb")  # lives as long as the server
    if server == "bastion":
        cmd = [str(base.BASTION_PY), "-m", "bastion.cli", "serve", "sample@production", "--port", str(port),
               "--workers", str(workers), "--project", str(prep["root"]), "--rate", "1000000", "--burst", "100000"]
        url, key = f"http://127.0.0.1:{port}/v1/models/sample:predict", prep["key"]
    elif server == "bare":
        env.update(BARE_MODEL=str(prep["onnx"]), BARE_N_FEATURES=str(N_FEATURES))
        cmd = [str(base.BASTION_PY), str(HERE / "bare_onnx_app.py"), "-", str(port), str(workers)]
        url, key = f"http://127.0.0.1:{port}/v1/models/sample:predict", ""
    else:
        cmd = [str(base.MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(prep["mlflow_model"]),
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
        env["PATH"] = f"{base.MLFLOW_VENV / 'bin'}:{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)
        url, key = f"http://127.0.0.1:{port}/invocations", ""
    proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    body = (WORK / f"body-{server}-1.json").read_bytes()
    deadline = time.monotonic() + 180
    while True:
        try:
            req = urllib.request.Request(url, data=body, headers={
                "Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return proc, url, key
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{server} did not start; see {WORK / f'{server}-{workers}.log'}")
        time.sleep(0.5)


def answers(procs: dict[str, tuple[Any, str, str]]) -> dict[str, Any]:
    """Each server's answer to the same row: the comparison is only fair if they compute the same thing."""
    out = {}
    for s, (_, url, key) in procs.items():
        body = (WORK / f"body-{s}-1.json").read_bytes()
        req = urllib.request.Request(url, data=body, headers={
            "Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})})
        with urllib.request.urlopen(req, timeout=10) as r:
            out[s] = json.loads(r.read())
    return out


def run(workers: int, duration: float, rounds: int, conc: int) -> dict[str, Any]:
    prep = prepare()
    servers = ["mlflow", "bare", "bastion"]
    procs: dict[str, tuple[subprocess.Popen[bytes], str, str]] = {}
    raw: dict[str, list[dict[str, float]]] = {}
    try:
        for s in servers:
            procs[s] = start(s, workers, prep)
        same = answers(procs)
        for s in servers:  # warm-up
            _, url, key = procs[s]
            base.wrk(url, key, WORK / f"body-{s}-1.json", conc, 2)
        for _ in range(rounds):
            for s in servers:
                _, url, key = procs[s]
                r = base.wrk(url, key, WORK / f"body-{s}-1.json", conc, duration)
                raw.setdefault(s, []).append(r)
                print(f"w={workers} {s:8s} c={conc} {r['rps']:8.0f} req/s p50 {r['p50']:6.2f} ms "
                      f"p99 {r['p99']:7.2f} ms errors {r['errors']:.0f} load {r['load']:.2f}", flush=True)
    finally:
        for proc, _, _ in procs.values():
            base.stop(proc)
    return {"workers": workers, "concurrency": conc, "raw": raw, "answers": same}


def render(res: dict[str, Any], args: argparse.Namespace, took: float, env: Environment) -> str:
    raw = res["raw"]
    med = {s: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99")} for s, rs in raw.items()}
    loads = [r["load"] for rs in raw.values() for r in rs]
    rounds = len(raw["bastion"])
    vs_bare = [raw["bastion"][i]["rps"] / raw["bare"][i]["rps"] for i in range(rounds)]
    vs_mlflow = [raw["bastion"][i]["rps"] / raw["mlflow"][i]["rps"] for i in range(rounds)]
    lines = [
        BEGIN, "", "## ONNX model (issue 16)", "",
        f"Command: `BENCH_MLFLOW_VENV=… python bench/serving/onnx_bench.py --duration {args.duration:g} "
        f"--rounds {args.rounds} --workers {args.workers}` ({took / 60:.1f} min, under "
        "`flock /tmp/bastion-bench.lock`).", "",
        f"Model: a scikit-learn StandardScaler + LogisticRegression pipeline on {N_FEATURES} numeric features, "
        "converted with skl2onnx (one float tensor input; label and probability outputs), the same `.onnx` file "
        "for all three servers. Bastion: `bastion serve` with every layer on (API-key auth, generated validation, "
        "rate/concurrency limits, audit journal, prediction log, metrics, alias polling), ONNX flavor "
        "(onnxruntime, 1 intra-op thread). Bare: FastAPI + pydantic + onnxruntime (1 intra-op thread), no "
        "security layers. MLflow: `mlflow models serve --env-manager local` of `mlflow.onnx.save_model` (pyfunc). "
        f"Single-row requests, concurrency {res['concurrency']}, {res['workers']} worker(s), wrk on 127.0.0.1; "
        f"medians of {rounds} interleaved rounds. 1-minute load average during the runs: median "
        f"{statistics.median(loads):.1f}, range {min(loads):.1f}-{max(loads):.1f} (2 shared cores).", "",
        "| server | req/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|",
    ]
    for s in ("bare", "bastion", "mlflow"):
        m = med[s]
        lines.append(f"| {s} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | "
                     f"{sum(r['errors'] for r in raw[s]):.0f} |")
    ok_bare = statistics.median(vs_bare) >= 1.0
    ok_mlflow = statistics.median(vs_mlflow) >= 2.0
    lines += [
        "", "| bar | measured (median of per-round ratios; every round) | met |", "|---|---|---|",
        f"| Bastion / bare FastAPI+onnxruntime req/s >= 1.0 | {statistics.median(vs_bare):.2f} "
        f"({', '.join(f'{v:.2f}' for v in vs_bare)}) | {'yes' if ok_bare else 'NO'} |",
        f"| Bastion / MLflow pyfunc req/s >= 2.0 | {statistics.median(vs_mlflow):.2f} "
        f"({', '.join(f'{v:.2f}' for v in vs_mlflow)}) | {'yes' if ok_mlflow else 'NO'} |",
        "", "Same answer from each server for the first row (the comparison is like for like):", "",
        "```json", json.dumps(res["answers"], sort_keys=True), "```", "",
        f"Versions: {versions()}", "",
        f"Machine: {platform.platform()}. {env.markdown()} (files in `bench/serving/onnx/`)", "", END,
    ]
    return "\n".join(lines)


def versions() -> str:
    """uvicorn, the web stack and onnxruntime as each server runs them (PEERS.md: name uvicorn's version)."""
    code = ("import sys, importlib.metadata as m\n"
            "print(' '.join(f'{p} {m.version(p)}' for p in sys.argv[1:]))")
    out = []
    for who, py, pkgs in (("bastion/bare", base.BASTION_PY, ["uvicorn", "fastapi", "pydantic", "onnxruntime"]),
                          ("mlflow", base.MLFLOW_PY, ["mlflow", "uvicorn", "fastapi", "onnxruntime"])):
        try:
            text = subprocess.run([str(py), "-c", code, *pkgs], capture_output=True, text=True, check=True,
                                  timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            text = "unknown"
        out.append(f"{who}: {text}")
    return "; ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    if args.rounds < 3:
        ap.error(f"--rounds must be at least 3 (medians of interleaved rounds); got {args.rounds}")
    # versions, commit, load at start and end and `pip freeze` of every venv used: bench/serving/onnx/
    env = record_environment(ENV_DIR, {"bastion": str(base.BASTION_PY), "mlflow": str(base.MLFLOW_PY)})
    t0 = time.monotonic()
    res = run(args.workers, args.duration, args.rounds, args.concurrency)
    took = time.monotonic() - t0
    env.finish()
    (HERE / "onnx_results.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    section = render(res, args, took, env)
    results = HERE / "RESULTS.md"
    text = results.read_text(encoding="utf-8") if results.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(text, encoding="utf-8")
    print(section)


if __name__ == "__main__":
    main()
