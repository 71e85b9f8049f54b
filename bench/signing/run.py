"""Bench: Bastion OMS sign/verify of a 1 GB model folder vs `sha256sum` (and upstream model_signing).

Usage: .venv/bin/python bench/signing/run.py [--size-mb 1024] [--files 8] [--runs 3] [--no-upstream]
Writes the table to stdout and bench/signing/work/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.crypto.signing import SigningKey, TrustStore, sign_model, verify_model

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/: _freeze records versions and load
from _freeze import record_environment

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"


def make_model(root: Path, size_mb: int, files: int) -> list[Path]:
    """A model folder of ``files`` files totalling ``size_mb`` MiB (one big shard plus smaller ones)."""
    root.mkdir(parents=True, exist_ok=True)
    # Uneven sizes like a real checkpoint: half the bytes in one file, the rest spread out.
    total = size_mb * 1024 * 1024
    sizes = [total // 2] + [total // 2 // (files - 1)] * (files - 1)
    paths = []
    chunk = os.urandom(8 * 1024 * 1024)
    for i, size in enumerate(sizes):
        p = root / (f"model-{i:05d}.safetensors" if i else "model-00000-big.safetensors")
        paths.append(p)
        if p.exists() and p.stat().st_size == size:
            continue
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
    (root / "config.json").write_text('{"arch": "bench"}')
    paths.append(root / "config.json")
    for stale in set(root.iterdir()) - set(paths):  # shards of an earlier run with other sizes: not this model
        stale.unlink()
    return paths


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children: tools run in- or out-of-process."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


CPU: dict[str, list[float]] = {}


def timed_round_robin(tools: dict[str, object], runs: int) -> dict[str, tuple[float, list[float]]]:
    """Time every tool ``runs`` times, interleaved, so all see the same background load on a shared box.

    The CPU seconds of each run go to ``CPU[name]`` (less inflated by other jobs than wall time)."""
    for fn in tools.values():
        fn()  # warm-up: page cache and imports, so every tool reads from memory alike
    times: dict[str, list[float]] = {name: [] for name in tools}
    for name in tools:
        CPU[name] = []
    for _ in range(runs):
        for name, fn in tools.items():
            c, t = _cpu(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
            CPU[name].append(_cpu() - c)
    return {name: (statistics.median(ts), ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-upstream", action="store_true")
    args = ap.parse_args()
    env = record_environment(HERE, {"bastion": sys.executable})

    model = WORK / "model"
    paths = make_model(model, args.size_mb, args.files)
    key = ec.generate_private_key(ec.SECP256R1())
    sk = SigningKey("bench", key)
    trust = TrustStore.from_pem(public_keys=[sk.public_key_pem])
    priv = WORK / "key.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub = WORK / "key.pub"
    pub.write_text(sk.public_key_pem)
    bundle_path = WORK / "bastion.sig"

    def sha256sum() -> None:
        subprocess.run(["sha256sum", *map(str, paths)], check=True, capture_output=True)

    def b_sign() -> None:
        bundle_path.write_text(json.dumps(sign_model(model, sk)))

    def b_verify() -> None:
        verify_model(model, json.loads(bundle_path.read_text()), trust)

    tools = {
        "sha256sum (coreutils, all files)": sha256sum,
        "bastion sign": b_sign,
        "bastion verify": b_verify,
    }
    up = shutil.which("model_signing", path=str(Path(sys.executable).parent))
    if up and not args.no_upstream:
        up_sig = WORK / "upstream.sig"
        tools["model_signing sign key (CLI)"] = lambda: subprocess.run(
            [up, "sign", "key", str(model), "--private_key", str(priv), "--signature", str(up_sig)],
            check=True, capture_output=True)
        tools["model_signing verify key (CLI)"] = lambda: subprocess.run(
            [up, "verify", "key", str(model), "--signature", str(up_sig), "--public_key", str(pub)],
            check=True, capture_output=True)
    try:  # the same library in-process: its numbers without the CLI's interpreter start-up and imports
        from model_signing import signing as ms_signing
        from model_signing import verifying as ms_verifying
    except ImportError:
        ms_signing = None
    if ms_signing is not None and not args.no_upstream:
        api_sig = WORK / "upstream-api.sig"
        tools["model_signing sign (Python API)"] = lambda: ms_signing.Config().use_elliptic_key_signer(
            private_key=priv).sign(model, api_sig)
        tools["model_signing verify (Python API)"] = lambda: ms_verifying.Config().use_elliptic_key_verifier(
            public_key=pub).verify(model, api_sig)
    rows = timed_round_robin(tools, args.runs)

    base = rows["sha256sum (coreutils, all files)"][0]
    size = sum(p.stat().st_size for p in paths)
    load = os.getloadavg()[0]
    print(f"model: {len(paths)} files, {size / 2**20:.0f} MiB; cores: {os.cpu_count()}; "
          f"runs: {args.runs} interleaved (+1 warm-up); load average at end: {load:.1f}")
    print(f"{'tool':36} {'median s':>9} {'x sha256sum':>12} {'median CPU s':>13}  runs")
    out = {}
    for name, (med, ts) in rows.items():
        cpu = statistics.median(CPU[name])
        print(f"{name:36} {med:9.3f} {med / base:12.2f} {cpu:13.3f}  {', '.join(f'{t:.3f}' for t in ts)}")
        out[name] = {"median_s": med, "ratio_vs_sha256sum": med / base, "runs_s": ts, "median_cpu_s": cpu,
                     "cpu_s": CPU[name]}
    (WORK / "results.json").write_text(
        json.dumps({"files": len(paths), "bytes": size, "load_average": load, "rows": out}, indent=2))
    env.finish()
    print(env.markdown())


if __name__ == "__main__":
    main()
