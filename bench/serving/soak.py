"""Soak bench (not CI): legitimate traffic to `bastion serve --ui` mixed with each attack of issue 15, one
phase after another, on loopback; counts legitimate failures and reports latency percentiles per phase.

    python bench/serving/soak.py                      # ten minutes (six phases of 100 s)
    python bench/serving/soak.py --duration 120       # a shorter look

Phases: baseline; 2,100 idle connections (refreshed as the server evicts them); slowloris request heads;
4 callers with a valid key sending ~75k-key bodies; a login flood on the dashboard with a new forged
X-Forwarded-For per try; baseline again (what the attacks left behind). Legitimate traffic throughout:
keyed predictions from 4 keep-alive clients and a /healthz probe. Every ``--sample`` seconds the server's
resident memory and open descriptors (all its processes) and the legitimate latency of that interval are
recorded, so drift over the run shows. Writes bench/serving/SOAK.md (and env-soak/: versions, load, pip
freeze).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / "work"
sys.path.insert(0, str(HERE))
from run import BASTION_PY, free_port, prepare  # noqa: E402
from run import stop as stop_proc  # noqa: E402

sys.path.append(str(HERE.parent))  # bench/: _freeze records versions, load and pip freeze
from _freeze import record_environment  # noqa: E402

PHASES = ["baseline", "idle-flood", "slowloris", "many-key-bodies", "login-flood-forged-xff", "baseline-after"]
_PAGE = os.sysconf("SC_PAGE_SIZE")


def group_usage(pgid: int) -> tuple[int, float, int]:
    """(processes, resident memory in MiB, open descriptors) of every process in process group ``pgid``."""
    n, rss, fds = 0, 0, 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[2]) != pgid:
                continue
            rss += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * _PAGE
            fds += len(os.listdir(f"/proc/{p}/fd"))
            n += 1
        except (OSError, ValueError, IndexError):
            continue
    return n, rss / 2**20, fds


class Legit:
    """Keyed predictions on keep-alive connections and /healthz probes; every non-200 is a failure."""

    def __init__(self, port: int, key: str, body: bytes) -> None:
        self.port, self.key, self.body = port, key, body
        self.lat: dict[str, list[float]] = {}
        self.timeline: list[float] = []  # every legitimate latency in order (the sampler slices it)
        self.fail: dict[str, list[str]] = {}
        self.retried: dict[str, int] = {}  # keep-alive connections the server had closed: one retry, counted
        self.phase = "baseline"
        self.stop = threading.Event()

    def _loop(self, path: str, method: str, body: bytes | None, headers: dict[str, str], pause: float) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self.stop.is_set():
            phase = self.phase
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                took = time.perf_counter() - t0
                if r.status != 200:
                    self.fail.setdefault(phase, []).append(f"{path} {r.status}")
                else:
                    self.lat.setdefault(phase, []).append(took)
                    self.timeline.append(took)
            except (OSError, http.client.HTTPException) as e:
                # a keep-alive connection closed by the server between requests is retried once on a new one
                if conn is not None:
                    conn.close()
                conn = None
                self.retried[phase] = self.retried.get(phase, 0) + 1
                try:
                    c2 = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    c2.request(method, path, body=body, headers=headers)
                    r = c2.getresponse()
                    r.read()
                    conn = c2
                    if r.status != 200:
                        self.fail.setdefault(phase, []).append(f"{path} {r.status}")
                    else:
                        self.lat.setdefault(phase, []).append(time.perf_counter() - t0)
                        self.timeline.append(time.perf_counter() - t0)
                except (OSError, http.client.HTTPException) as e2:
                    self.fail.setdefault(phase, []).append(f"{path} {type(e).__name__}/{type(e2).__name__}")
            time.sleep(pause)

    def start(self, name: str) -> list[threading.Thread]:
        hdr = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}
        ts = [threading.Thread(target=self._loop, args=(f"/v1/models/{name}:predict", "POST", self.body, hdr, 0.005))
              for _ in range(4)]
        ts.append(threading.Thread(target=self._loop, args=("/healthz", "GET", None, {}, 0.05)))
        for t in ts:
            t.start()
        return ts


def idle_flood(port: int, stop: threading.Event) -> None:
    socks: list[socket.socket] = []
    while not stop.is_set():
        while len(socks) < 2100 and not stop.is_set():
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        time.sleep(0.5)
        alive = []
        for s in socks:  # keep the count up: reopen what the server evicted or timed out
            try:
                s.setblocking(False)
                if s.recv(1) == b"":
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            alive.append(s)
        socks = alive
    for s in socks:
        s.close()


def slowloris(port: int, stop: threading.Event) -> None:
    socks: list[socket.socket] = []
    while not stop.is_set():
        while len(socks) < 500:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            except OSError:
                break
        time.sleep(1.0)
        alive = []
        for s in socks:
            try:
                s.sendall(b"X-a: b\r\n")
                alive.append(s)
            except OSError:
                s.close()
        socks = alive
    for s in socks:
        s.close()


def many_keys(port: int, key: str, name: str, stop: threading.Event) -> None:
    body = ("{\"instances\":[{" + ",".join(f'"k{i}":1' for i in range(75_000)) + "}]}").encode()

    def one() -> None:
        while not stop.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("POST", f"/v1/models/{name}:predict", body=body,
                          headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
                c.getresponse().read()
                c.close()
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)

    ts = [threading.Thread(target=one) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def login_flood(port: int, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/ui/login")
            r = c.getresponse()
            page = r.read().decode()
            cookie = re.search(r"bastion_login_csrf=([^;]+)", r.getheader("set-cookie") or "")
            token = re.search(r'name="csrf" value="([^"]+)"', page)
            if cookie and token:
                form = f"csrf={token.group(1)}&username=ops&password=guess-{i}"
                c.request("POST", "/ui/login", body=form, headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Cookie": f"bastion_login_csrf={cookie.group(1)}",
                    "X-Forwarded-For": f"10.{i % 250}.{i // 250 % 250}.{i % 7}"})
                c.getresponse().read()
            c.close()
        except (OSError, http.client.HTTPException):
            time.sleep(0.01)
        i += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds in total (split over the phases)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--sample", type=float, default=20, help="seconds between memory/descriptor/latency samples")
    ap.add_argument("--out", default=str(HERE / "SOAK.md"))
    args = ap.parse_args()
    env_rec = record_environment(HERE / "env-soak", {"bastion": str(BASTION_PY)})
    prep = prepare(mlflow=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(PYTHONPATH=str(REPO / "src"), BASTION_UI_PASSWORD="ops-password-1")
    subprocess.run([str(BASTION_PY), "-m", "bastion.cli", "users", "add", "ops", "--role", "operator",
                    "--project", str(prep["root"])], env=env, check=True, capture_output=True)
    port = free_port()
    log = open(WORK / "soak-server.log", "wb")
    proc = subprocess.Popen([str(BASTION_PY), "-m", "bastion.cli", "serve", "sample@production", "--port", str(port),
                             "--workers", str(args.workers), "--project", str(prep["root"]), "--ui"],
                            cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    body = (WORK / "body-bastion-1.json").read_bytes()
    deadline = time.monotonic() + 180
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("the server did not start; see bench/serving/work/soak-server.log")
        time.sleep(0.5)
    legit = Legit(port, prep["key"], body)
    threads = legit.start("sample")
    per = args.duration / len(PHASES)
    load: dict[str, float] = {}
    t_start = time.time()
    samples: list[dict[str, float | str]] = []
    sampling = threading.Event()

    def sampler() -> None:
        seen = 0
        while True:
            n, rss, fds = group_usage(proc.pid)
            lat = sorted(legit.timeline[seen:])
            seen += len(lat)
            q = (lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000) if lat else (lambda f: float("nan"))
            samples.append({"t": time.time() - t_start, "phase": legit.phase, "procs": n, "rss_mib": rss,
                            "fds": fds, "ok": len(lat), "p50": q(0.5), "p99": q(0.99), "load": os.getloadavg()[0]})
            if sampling.wait(args.sample):
                return

    sample_thread = threading.Thread(target=sampler, daemon=True)
    sample_thread.start()
    try:
        for phase in PHASES:
            legit.phase = phase
            stop = threading.Event()
            attack = {
                "baseline": None,
                "idle-flood": lambda st: idle_flood(port, st),
                "slowloris": lambda st: slowloris(port, st),
                "many-key-bodies": lambda st: many_keys(port, prep["key"], "sample", st),
                "login-flood-forged-xff": lambda st: login_flood(port, st),
                "baseline-after": None,
            }[phase]
            t = threading.Thread(target=attack, args=(stop,)) if attack else None
            if t:
                t.start()
            time.sleep(per)
            load[phase] = os.getloadavg()[0]
            stop.set()
            if t:
                t.join(60)
            print(f"{phase}: {len(legit.lat.get(phase, []))} ok, {len(legit.fail.get(phase, []))} failed", flush=True)
        sampling.set()
        sample_thread.join(30)
    finally:
        sampling.set()
        legit.stop.set()
        for t in threads:
            t.join(30)
        stop_proc(proc)
    took = time.time() - t_start
    env_rec.finish()
    lines = ["# Soak bench (issue 15)", "",
             f"Command: `python bench/serving/soak.py --duration {args.duration:g} --workers {args.workers}` "
             f"({took / 60:.1f} min, {per:.0f} s per phase). Server: `bastion serve sample@production --ui` with "
             "default limits and connection guard; legitimate traffic: 4 keep-alive clients sending keyed single-row "
             "predictions (5 ms pause) and a /healthz probe every 50 ms, throughout. 1-minute load average at the end "
             "of each phase is given (2 shared cores).", "",
             "A legitimate request whose keep-alive connection the server had closed (idle eviction) is retried "
             "once on a new connection, as HTTP clients do; those retries are counted, and a failed retry is a "
             "failure.", "",
             "| phase | legit ok | legit failed | retried | p50 ms | p99 ms | max ms | load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for phase in PHASES:
        lat = sorted(legit.lat.get(phase, []))
        fails = legit.fail.get(phase, [])
        p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: float("nan"))
        lines.append(f"| {phase} | {len(lat)} | {len(fails)} | {legit.retried.get(phase, 0)} | {p(0.5):.2f} | "
                     f"{p(0.99):.2f} | "
                     f"{(lat[-1] * 1000 if lat else float('nan')):.1f} | {load[phase]:.1f} |")
    all_fail = [f for v in legit.fail.values() for f in v]
    lines += ["", f"Legitimate failures in total: {len(all_fail)}"
              + (f" ({', '.join(sorted(set(all_fail))[:10])})" if all_fail else "") + "."]
    lines += ["", "## Over time", "",
              f"Every {args.sample:g} s: the server's processes (supervisor, workers, prediction-log shippers), "
              "their resident memory and open descriptors summed, and the legitimate requests of the interval.", "",
              "| t s | phase | processes | RSS MiB | open fds | legit ok | p50 ms | p99 ms | load |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for smp in samples:
        lines.append(f"| {smp['t']:.0f} | {smp['phase']} | {smp['procs']} | {smp['rss_mib']:.0f} | {smp['fds']} | "
                     f"{smp['ok']} | {smp['p50']:.2f} | {smp['p99']:.2f} | {smp['load']:.1f} |")
    base = [x for x in samples if x["phase"] == "baseline"][1:]  # the first sample precedes any traffic
    after = [x for x in samples if x["phase"] == "baseline-after"]
    if base and after:
        def med(rows: list[dict[str, float | str]], k: str) -> float:
            return statistics.median(float(r[k]) for r in rows)
        lines += ["", "Drift, baseline-after against baseline (medians of their samples): "
                  f"RSS {med(base, 'rss_mib'):.0f} -> {med(after, 'rss_mib'):.0f} MiB, "
                  f"open descriptors {med(base, 'fds'):.0f} -> {med(after, 'fds'):.0f}, "
                  f"legit p50 {med(base, 'p50'):.2f} -> {med(after, 'p50'):.2f} ms, "
                  f"p99 {med(base, 'p99'):.2f} -> {med(after, 'p99'):.2f} ms."]
    lines += ["", f"{env_rec.markdown()} (files in `env-soak/`)"]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    (WORK / "soak.json").write_text(json.dumps({"lat_ms_p50": {k: statistics.median(v) * 1000
                                                              for k, v in legit.lat.items() if v},
                                                "fail": legit.fail, "samples": samples}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
