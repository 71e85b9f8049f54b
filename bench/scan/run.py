"""Benchmark: Bastion's artifact scanner against modelscan, picklescan and fickling.

Builds the test corpus and two PyTorch checkpoints under bench/scan/work/, runs every tool on them
in the same run, and writes bench/scan/RESULTS.md. See bench/scan/README.md for the set-up.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BENCH = REPO / "bench"
# Bastion: the project venv when there is one, else the shared venv with this checkout's sources first.
BASTION_VENV = REPO / ".venv" if (REPO / ".venv" / "bin" / "python").exists() else Path("/work/venv")
BASTION_PY = BASTION_VENV / "bin" / "python"
# Peers live in their own venvs: bench/.venv-<peer>, else /work/bench-venvs/<peer> (shared/PEERS.md).
PEER_VENVS = Path(os.environ.get("BASTION_BENCH_VENVS", "/work/bench-venvs"))


def peer_venv(name: str, fallback: str) -> Path:
    local = BENCH / f".venv-{name}"
    return local if local.exists() else PEER_VENVS / fallback

# --- per-file verdict drivers, one per tool, run inside that tool's venv -----------------------
# Each reads the manifest, scans every sample through the tool's own Python API (what its CLI
# calls), and prints {name: {"flagged": bool, "error": str|None, "skipped": bool}}.

DRIVER_PICKLESCAN = """
import json, sys, logging
logging.disable(logging.CRITICAL)
from picklescan.scanner import scan_file_path
strict = sys.argv[2] == "strict"
out = {}
for s in json.load(open(sys.argv[1]))["samples"]:
    try:
        r = scan_file_path(s["path"], strict=strict)
        out[s["name"]] = {"flagged": r.issues_count > 0, "error": "scan error" if r.scan_err else None,
                          "skipped": r.scanned_files == 0}
    except Exception as e:
        out[s["name"]] = {"flagged": False, "error": f"{type(e).__name__}: {e}"[:200], "skipped": False}
print(json.dumps(out))
"""

DRIVER_MODELAUDIT = """
import json, sys, logging, os
os.environ["PROMPTFOO_DISABLE_TELEMETRY"] = "1"
logging.disable(logging.CRITICAL)
from modelaudit.core import scan_model_directory_or_file
out = {}
for s in json.load(open(sys.argv[1]))["samples"]:
    try:
        r = scan_model_directory_or_file(s["path"]).model_dump()
        sev = {str(i.get("severity", "")).lower() for i in (r.get("issues") or [])}
        out[s["name"]] = {"flagged": bool(sev & {"critical", "warning"}),
                          "error": "scan error" if r.get("has_errors") else None,
                          "skipped": not r.get("files_scanned")}
    except Exception as e:
        out[s["name"]] = {"flagged": False, "error": f"{type(e).__name__}: {e}"[:200], "skipped": False}
print(json.dumps(out))
"""

DRIVER_MODELSCAN = """
import json, sys, logging
logging.disable(logging.CRITICAL)
from modelscan.modelscan import ModelScan
from modelscan.settings import DEFAULT_SETTINGS
out = {}
for s in json.load(open(sys.argv[1]))["samples"]:
    try:
        r = ModelScan(settings=DEFAULT_SETTINGS).scan(s["path"])
        errs = r.get("errors") or []
        out[s["name"]] = {"flagged": bool(r.get("issues")),
                          "error": "; ".join(str(e.get("description", e))[:120] for e in errs) or None,
                          "skipped": r["summary"]["scanned"]["total_scanned"] == 0}
    except Exception as e:
        out[s["name"]] = {"flagged": False, "error": f"{type(e).__name__}: {e}"[:200], "skipped": False}
print(json.dumps(out))
"""

DRIVER_FICKLING = """
import json, sys, zipfile, logging
logging.disable(logging.CRITICAL)
import fickling
from fickling.analysis import Severity
def scan(path):
    if zipfile.is_zipfile(path):
        res = list(fickling.scan_zip_archive(path, graceful=True).values())
    else:
        res = [fickling.scan_file(path, graceful=True)]
    errs = [e for r in res for e in r.errors]
    return {"flagged": any(r.severity > Severity.LIKELY_SAFE for r in res),
            "error": "; ".join(errs)[:200] or None, "skipped": not res}
out = {}
for s in json.load(open(sys.argv[1]))["samples"]:
    try:
        out[s["name"]] = scan(s["path"])
    except Exception as e:
        out[s["name"]] = {"flagged": False, "error": f"{type(e).__name__}: {e}"[:200], "skipped": False}
print(json.dumps(out))
"""

DRIVER_BASTION = """
import json, sys
from pathlib import Path
from bastion.scan import scan_path, Severity
out = {}
for s in json.load(open(sys.argv[1]))["samples"]:
    try:
        r = scan_path(Path(s["path"]))
        worst = r.max_severity
        out[s["name"]] = {"flagged": any(f.severity >= Severity.HIGH for f in r.findings),
                          "above_info": worst is not None and worst > Severity.INFO,
                          "error": "; ".join(e.message for e in r.errors)[:200] or None, "skipped": False}
    except Exception as e:
        out[s["name"]] = {"flagged": False, "error": f"{type(e).__name__}: {e}"[:200], "skipped": False}
print(json.dumps(out))
"""

BASTION_ONE = """
import sys
from pathlib import Path
from bastion.scan import scan_path
r = scan_path(Path(sys.argv[1]), digest="--digest" in sys.argv)
print(len(r.files), len(r.findings), r.max_severity)
"""

# Forks and execs the command from a small, fresh interpreter and reports wall time and the
# child's peak RSS. Measuring from run.py itself would be wrong: Linux carries the parent's
# RSS high-water mark into a forked child across exec, and run.py holds torch and the corpus.
MEASURE = """
import json, os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 1); os.dup2(fd, 2)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": time.perf_counter() - t, "rss_kib": usage.ru_maxrss,
                  "exit": os.waitstatus_to_exitcode(status)}))
"""

# In-process scan time: import first, then time only the scan call (median of 3 calls).
INPROC = {
    # per file, catching exceptions: scan_directory_path aborts the whole folder on the first
    # file it cannot parse (see RESULTS.md), which would time a partial scan
    "picklescan": "from picklescan.scanner import scan_file_path\n"
                  "STRICT = '--strict' in sys.argv\n"
                  "def one(p):\n"
                  "    try:\n"
                  "        return scan_file_path(p, strict=STRICT)\n"
                  "    except Exception:\n"
                  "        return None\n"
                  "def scan(p):\n"
                  "    if os.path.isdir(p):\n"
                  "        return [one(str(f)) for f in sorted(Path(p).rglob('*')) if f.is_file()]\n"
                  "    return one(p)\n",
    "modelscan": "from modelscan.modelscan import ModelScan\nfrom modelscan.settings import DEFAULT_SETTINGS\n"
                 "def scan(p):\n    return ModelScan(settings=DEFAULT_SETTINGS).scan(p)\n",
    "fickling": "import zipfile, fickling\n"
                "def one(p):\n"
                "    return (fickling.scan_zip_archive(p, graceful=True) if zipfile.is_zipfile(p)\n"
                "            else fickling.scan_file(p, graceful=True))\n"
                "def scan(p):\n"
                "    if os.path.isdir(p):\n"
                "        return [one(str(f)) for f in sorted(Path(p).rglob('*')) if f.is_file()]\n"
                "    return one(p)\n",
    "bastion": "from bastion.scan import scan_path\nDIGEST = '--digest' in sys.argv\n"
               "def scan(p):\n    return scan_path(Path(p), digest=DIGEST)\n",
}
INPROC_MAIN = """
import json, logging, os, statistics, sys, time
from pathlib import Path
logging.disable(logging.CRITICAL)
{body}
times = []
for _ in range(3):
    t = time.perf_counter()
    scan(sys.argv[1])
    times.append(time.perf_counter() - t)
print(json.dumps(statistics.median(times)))
"""

FICKLING_ONE = """
import sys, zipfile, fickling
p = sys.argv[1]
r = fickling.scan_zip_archive(p, graceful=True) if zipfile.is_zipfile(p) else fickling.scan_file(p, graceful=True)
print(r)
"""


@dataclass
class Tool:
    name: str
    venv: Path
    driver: str
    driver_args: list[str] = field(default_factory=list)
    # command scanning a whole folder / one file; {path} is replaced
    cmd: list[str] = field(default_factory=list)
    note: str = ""
    inproc: str = ""  # key of INPROC, plus flags after a space
    verdicts_from: str = ""  # reuse another row's per-file verdicts (same scanner, other command)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def available(self) -> bool:
        return self.python.exists()


def tools(work: Path) -> list[Tool]:
    drivers = work / "drivers"
    drivers.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, src in [("picklescan", DRIVER_PICKLESCAN), ("modelscan", DRIVER_MODELSCAN),
                      ("modelaudit", DRIVER_MODELAUDIT),
                      ("fickling", DRIVER_FICKLING), ("bastion", DRIVER_BASTION), ("fickling_one", FICKLING_ONE),
                      ("bastion_one", BASTION_ONE), ("measure", MEASURE)]:
        p = drivers / f"drive_{name}.py"
        p.write_text(textwrap.dedent(src))
        paths[name] = str(p)
    global MEASURE_SCRIPT
    MEASURE_SCRIPT = paths["measure"]
    for name, body in INPROC.items():
        p = drivers / f"inproc_{name}.py"
        p.write_text(INPROC_MAIN.replace("{body}", body))
        paths[f"inproc_{name}"] = str(p)
    ps, ms = peer_venv("picklescan", "picklescan"), peer_venv("modelscan", "modelscan")
    ms22, fk = peer_venv("modelscan-np22", "modelscan-np22"), peer_venv("fickling", "fickling")
    ma = peer_venv("modelaudit", "modelaudit")
    bastion = BASTION_VENV
    cli = [str(bastion / "bin" / "bastion"), "model", "scan", "{path}"]
    return [
        Tool("bastion", bastion, paths["bastion"], cmd=[*cli, "--json"], inproc="bastion",
             note="JSON to stdout (the CLI's default: no SHA-256 of each file)"),
        Tool("bastion (text)", bastion, paths["bastion"], cmd=cli, verdicts_from="bastion",
             note="the default text report, to a pipe (plain text; rich tables only on a terminal)"),
        Tool("bastion (SARIF to file)", bastion, paths["bastion"],
             cmd=[*cli, "--format", "sarif", "-o", str(work / "out.sarif")], verdicts_from="bastion"),
        Tool("bastion --digest", bastion, paths["bastion"], cmd=[*cli, "--json", "--digest"],
             note="also records each file's SHA-256 (reads every byte of the checkpoint)", verdicts_from="bastion",
             inproc="bastion --digest"),
        Tool("bastion (Python API)", bastion, paths["bastion"],
             cmd=[str(bastion / "bin" / "python"), paths["bastion_one"], "{path}"],
             note="`scan_path(path)` in a fresh interpreter (no digest, like the CLI)", verdicts_from="bastion"),
        Tool("bastion (Python API, digest=True)", bastion, paths["bastion"],
             cmd=[str(bastion / "bin" / "python"), paths["bastion_one"], "{path}", "--digest"],
             note="`scan_path(path, digest=True)`", verdicts_from="bastion"),
        Tool("picklescan", ps, paths["picklescan"], ["default"], cmd=[str(ps / "bin" / "picklescan"), "-p", "{path}"],
             inproc="picklescan"),
        Tool("picklescan --strict", ps, paths["picklescan"], ["strict"],
             cmd=[str(ps / "bin" / "picklescan"), "--strict", "-p", "{path}"], inproc="picklescan --strict"),
        Tool("modelscan", ms, paths["modelscan"], cmd=[str(ms / "bin" / "modelscan"), "-p", "{path}"],
             note="plain `pip install modelscan` (numpy 2.4): no h5py/tensorflow extras", inproc="modelscan"),
        Tool("modelscan (numpy 2.2 + TF)", ms22, paths["modelscan"],
             cmd=[str(ms22 / "bin" / "modelscan"), "-p", "{path}"],
             note="modelscan[h5py,tensorflow] with numpy pinned 2.2: its .h5/.keras scanners work; "
             "TensorFlow start-up dominates its time",
             inproc="modelscan"),
        Tool("modelaudit", ma, paths["modelaudit"], cmd=[str(ma / "bin" / "modelaudit"), "scan", "{path}"],
             note="`modelaudit scan` (ModelAudit's CLI; telemetry disabled); a file counts as detected when it "
             "reports a critical or warning issue"),
        Tool("fickling", fk, paths["fickling"], cmd=[str(fk / "bin" / "python"), paths["fickling_one"], "{path}"],
             note="Python API (its CLI cannot read zip files); folder time = one process over all files",
             inproc="fickling"),
    ]


MEASURE_SCRIPT = ""
LOAD_AT_START = ""
VERSIONS = ""


def measure(cmd: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (MiB) and exit code of one run of ``cmd``."""
    out = subprocess.run([sys.executable, "-S", MEASURE_SCRIPT, *cmd], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    return r["seconds"], r["rss_kib"] // 1024, r["exit"]


def timed(cmd: list[str], runs: int) -> dict[str, Any]:
    samples = [measure(cmd) for _ in range(runs)]
    return {"seconds": statistics.median(s[0] for s in samples), "rss_mib": statistics.median(s[1] for s in samples),
            "exit": samples[-1][2], "all_seconds": [round(s[0], 3) for s in samples]}


def inproc(tool: Tool, script: str, target: Path, flags: list[str]) -> float | None:
    proc = subprocess.run([str(tool.python), script, str(target), *flags], capture_output=True, text=True,
                          check=False, timeout=1800)
    if proc.returncode != 0:
        return None
    return float(proc.stdout.strip().splitlines()[-1])


def verdicts(tool: Tool, manifest: Path) -> dict[str, Any]:
    proc = subprocess.run([str(tool.python), tool.driver, str(manifest), *tool.driver_args],
                          capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool.name} driver failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_checkpoint(path: Path, mib: int) -> None:
    if path.exists() and path.stat().st_size >= mib * 2**20:
        return
    code = f"""
import torch
torch.manual_seed(0)
n = {mib} // 16
sd = {{f"layer{{i}}.weight": torch.randn(2048, 2048) for i in range(n)}}  # 16 MiB each, float32
sd["head.bias"] = torch.zeros(10)
torch.save(sd, {str(path)!r})
"""
    subprocess.run([str(BASTION_PY), "-c", code], check=True)


def build_corpus(work: Path) -> Path:
    spec = importlib.util.spec_from_file_location("bastion_scan_corpus_generate",
                                                  REPO / "tests" / "scan" / "corpus" / "generate.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen
    spec.loader.exec_module(gen)
    corpus = work / "corpus"
    if corpus.exists():
        import shutil

        shutil.rmtree(corpus)
    gen.build_corpus(corpus, work / "CANARY")
    manifest = corpus / "manifest.json"
    # issue 12's attacks on the allowlist, as their own rows (tests/scan/test_adversarial.py)
    sys.path.insert(0, str(REPO))
    from tests.scan import test_adversarial as adv

    doc = json.loads(manifest.read_text())
    folder = corpus / "adversarial"
    folder.mkdir()
    for s in adv._samples(work / "CANARY"):
        path = folder / s.name
        path.write_bytes(s.data)
        doc["samples"].append({"name": f"adversarial/{s.name}", "path": str(path), "malicious": True,
                               "technique": "issue 12: " + s.rule, "format": "adversarial",
                               "loader": None if s.loader == "none" else s.loader, "structural": None})
    manifest.write_text(json.dumps(doc, indent=1))
    return manifest


def summarize(samples: list[dict[str, Any]], v: dict[str, Any]) -> dict[str, Any]:
    mal = [s for s in samples if s["malicious"]]
    ben = [s for s in samples if not s["malicious"]]
    det = [s["name"] for s in mal if v[s["name"]]["flagged"]]
    fp = [s["name"] for s in ben if v[s["name"]]["flagged"]]
    err = [s["name"] for s in samples if v[s["name"]]["error"]]
    skipped = [s["name"] for s in samples if v[s["name"]]["skipped"]]
    return {"detected": len(det), "malicious": len(mal), "fp": len(fp), "benign": len(ben), "errors": len(err),
            "skipped": len(skipped), "missed": [s["name"] for s in mal if s["name"] not in det], "fp_names": fp,
            "error_names": err}


ENV: Any = None  # the recorded environment (bench/_freeze.py)
ALLOWED: dict[str, Any] | None = None  # allowed_load.py's timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per tool and input (median reported)")
    ap.add_argument("--size-mb", type=int, default=512, help="size of the large checkpoint")
    ap.add_argument("--work", type=Path, default=HERE / "work")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args()
    os.environ["PROMPTFOO_DISABLE_TELEMETRY"] = "1"
    os.environ["PYTHONPATH"] = str(REPO / "src")  # Bastion from this checkout (peers never import it)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    print("building corpus ...", flush=True)
    manifest = build_corpus(work)
    samples = json.loads(manifest.read_text())["samples"]
    big, small = work / f"ckpt_{args.size_mb}mb.pt", work / "ckpt_64mb.pt"
    print("building checkpoints ...", flush=True)
    make_checkpoint(big, args.size_mb)
    make_checkpoint(small, 64)

    # Peers' venvs hold the bytecode pip compiled at install; Bastion's editable checkout may not
    # (PYTHONDONTWRITEBYTECODE), which would charge it for compiling its sources on every run.
    subprocess.run([str(BASTION_PY), "-m", "compileall", "-q", str(REPO / "src" / "bastion")], check=True)
    global LOAD_AT_START, VERSIONS
    la = os.getloadavg()
    LOAD_AT_START = f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"
    versions = []
    for tool in tools(work):
        if tool.available() and tool.venv not in [v for v, _ in versions]:
            slug = "bastion" if tool.venv == BASTION_VENV else tool.venv.name.removeprefix(".venv-")
            versions.append((tool.venv, slug))
    # versions, commit, machine, load and `pip freeze` of every venv, beside the results (bench/_freeze.py)
    sys.path.insert(0, str(BENCH))
    from _freeze import record_environment

    global ENV
    ENV = record_environment(HERE, {slug: str(venv / "bin" / "python") for venv, slug in versions})
    want = ("picklescan", "modelscan", "fickling", "modelaudit", "numpy", "torch")
    found = []
    for venv, slug in versions:
        text = (HERE / f"freeze-{slug}.txt").read_text()
        pins = [ln for ln in text.splitlines() if ln.split("==")[0].lower() in want]
        found.append(f"{slug}: {', '.join(pins)}")
    VERSIONS = "; ".join(found)
    results: dict[str, Any] = {}
    for tool in tools(work):
        if not tool.available():
            print(f"skip {tool.name}: {tool.venv} missing", flush=True)
            continue
        print(f"{tool.name}: verdicts ...", flush=True)
        v = results[tool.verdicts_from]["verdicts"] if tool.verdicts_from else verdicts(tool, manifest)
        row: dict[str, Any] = {"verdicts": v, "summary": summarize(samples, v), "note": tool.note}
        corpus_cmd = ([str(tool.python), tool.driver, str(manifest), *tool.driver_args]
                      if tool.name == "fickling" else [c.replace("{path}", str(manifest.parent)) for c in tool.cmd])
        print(f"{tool.name}: timing ...", flush=True)
        row["corpus"] = timed(corpus_cmd, args.runs)
        row["big"] = timed([c.replace("{path}", str(big)) for c in tool.cmd], args.runs)
        row["small"] = timed([c.replace("{path}", str(small)) for c in tool.cmd], args.runs)
        row["corpus_cmd"] = corpus_cmd
        if tool.inproc:
            key, *flags = tool.inproc.split()
            script = str(work / "drivers" / f"inproc_{key}.py")
            row["inproc"] = {what: inproc(tool, script, target, flags)
                             for what, target in (("corpus", manifest.parent), ("big", big), ("small", small))}
        results[tool.name] = row
    print("allowed-finding loads ...", flush=True)
    run = subprocess.run([str(BASTION_PY), str(HERE / "allowed_load.py"), "--runs", "21"], capture_output=True,
                         text=True, check=True)
    global ALLOWED
    ALLOWED = json.loads(run.stdout.strip().splitlines()[-1])
    ENV.finish()
    (work / "results.json").write_text(json.dumps({**results, "_allowed_load": ALLOWED}, indent=1))
    args.out.write_text(render(results, samples, args, big))
    print(f"wrote {args.out}")


def bars(results: dict[str, Any], size_mb: int) -> list[str]:
    """The issue's bars, checked against this run's numbers for each way of running Bastion."""
    ps = results.get("picklescan")
    if ps is None:
        return []
    out = ["## Bars (issue 4), checked on this run", "",
           "| Bastion row | 100% detected | 0 false positives | no errors | corpus time <= picklescan "
           f"| {size_mb} MiB time <= picklescan | in-process {size_mb} MiB scan <= picklescan "
           f"| peak RSS {size_mb} MiB <= 64 MiB + 10% |",
           "|---|---|---|---|---|---|---|---|"]

    def mark(ok: bool, detail: str) -> str:
        return ("pass" if ok else "**FAIL**") + f" ({detail})"

    for name, r in results.items():
        if not name.startswith("bastion"):
            continue
        s = r["summary"]
        c, pc = r["corpus"]["seconds"], ps["corpus"]["seconds"]
        b, pb = r["big"]["seconds"], ps["big"]["seconds"]
        rb, rs = r["big"]["rss_mib"], r["small"]["rss_mib"]
        out.append(f"| {name} | {mark(s['detected'] == s['malicious'], str(s['detected']))} | "
                   f"{mark(s['fp'] == 0, str(s['fp']))} | {mark(s['errors'] == 0, str(s['errors']))} | "
                   f"{mark(c <= pc, f'{c:.2f} vs {pc:.2f} s')} | {mark(b <= pb, f'{b:.2f} vs {pb:.2f} s')} | "
                   f"{_inproc_bar(r, ps, mark)} | {mark(rb <= rs * 1.1, f'{rb} vs {rs} MiB')} |")
    if ps["corpus"]["exit"] == 2:
        out += ["", "picklescan's corpus time is the time until its folder scan aborted with an unhandled exception "
                "(exit 2, see Errors): it did not scan the whole corpus, so the comparison flatters picklescan."]
    return out


_LEGACY = ("torch-legacy", "torch-tar")


def legacy_torch(results: dict[str, Any], samples: list[dict[str, Any]]) -> list[str]:
    """Rows for legacy PyTorch checkpoints: a payload in each pickle torch.load reads, and benign files."""
    bad = [s["name"] for s in samples if s["malicious"] and s["format"] in _LEGACY]
    good = [s["name"] for s in samples if not s["malicious"] and s["format"] in (*_LEGACY, "torch")]
    out = ["## Legacy PyTorch checkpoints (issue 12 follow-up)", "",
           f"{len(bad)} malicious legacy files (the non-zip stream with a payload in its magic-number, protocol, "
           "sys_info, object or storage-keys pickle; the tar format with a payload in each record pickle of "
           "`storages` and `tensors`, after raw bytes, in the storage-views pickle, in `pickle`, and without "
           f"`sys_info`), each proven to run under `torch.load(weights_only=False)`; {len(good)} benign torch "
           "files (zip and legacy: state_dict, whole module, optimizer state, sparse, quantized, nested, meta, "
           "float8 tensors, parameters with state, buffers; legacy tar).", "",
           "| tool | legacy malicious detected | benign torch files flagged |", "|---|---|---|"]
    for name, r in results.items():
        v = r["verdicts"]
        hit = sum(bool(v[n]["flagged"]) for n in bad)
        fp = sum(bool(v[n]["flagged"]) for n in good)
        out.append(f"| {name} | {hit}/{len(bad)} ({_pct(hit, len(bad))}) | {fp}/{len(good)} |")
    return out


def allowed_load() -> list[str]:
    """Rows for loading a version registered with --allow-finding (no peer has an equivalent)."""
    a = ALLOWED
    if a is None:
        return []
    ms = {k: 1000 * v for k, v in a.items() if k.endswith("_s")}
    return ["## Loading a version registered with --allow-finding", "",
            f"`bench/scan/allowed_load.py`: a {a['size_bytes'] / 2**20:.1f} MiB pickle (a scikit-learn pipeline with a "
            "50-tree random forest, wrapped in a class of a local module, registered with `--allow-finding` and a "
            "reason; status `" + a["allowed_status"] + "`) and the unwrapped pipeline (clean), in a project with an "
            f"audit key. Median of {a['runs']} loads each, load cache cleared. No peer scanner loads models, so the "
            "comparison is with plain `pickle.loads` (which runs whatever the file says).", "",
            "| load | median (ms) |", "|---|---|",
            f"| `load_model` of the allowed version (allowance verified against the audit chain and its signed "
            f"checkpoint, blob re-hashed, restricted unpickling) | {ms['load_model_allowed_s']:.1f} |",
            f"| `load_model` of the clean version (same pipeline, no allowance to verify) | "
            f"{ms['load_model_clean_s']:.1f} |",
            f"| `restricted_loads(data, allow=[the allowed class])` alone | {ms['restricted_loads_allowed_s']:.1f} |",
            f"| `pickle.loads(data)` (unprotected) | {ms['pickle_loads_s']:.1f} |", "",
            f"Verifying the allowance costs {ms['load_model_allowed_s'] - ms['load_model_clean_s']:.1f} ms per load; "
            "the restricted unpickler (CPython's pure-Python unpickler with checks) is the larger cost against "
            "`pickle.loads`'s C implementation."]


def _inproc_bar(r: dict[str, Any], ps: dict[str, Any], mark: Any) -> str:
    mine, theirs = r.get("inproc", {}).get("big"), ps.get("inproc", {}).get("big")
    if mine is None or theirs is None:
        return "-"
    return mark(mine <= theirs, f"{mine:.3f} vs {theirs:.3f} s")


def _ip(row: dict[str, Any], what: str) -> str:
    v = row.get("inproc", {}).get(what)
    return "-" if v is None else f"{v:.3f}"


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.0f}%" if b else "-"


def render(results: dict[str, Any], samples: list[dict[str, Any]], args: argparse.Namespace, big: Path) -> str:
    cmd = f"cd <repo> && flock /tmp/bastion-bench.lock {BASTION_PY} bench/scan/run.py" + (
        f" --runs {args.runs}" if args.runs != 3 else "")
    if args.size_mb != 512:
        cmd += f" --size-mb {args.size_mb}"
    mal = sum(s["malicious"] for s in samples)
    lines = [
        "# Scanner benchmark results",
        "",
        f"Produced by `{cmd}` on {time.strftime('%Y-%m-%d')} ({platform.python_version()}, "
        f"{os.cpu_count()} shared cores; other developers' jobs ran at the same time, so quote medians and ratios). "
        f"Load average at the start: {LOAD_AT_START}; at the end: {os.getloadavg()[0]:.2f} "
        f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}. Versions: {VERSIONS}; `pip freeze` of every venv "
        "used is in `bench/scan/freeze-*.txt`.",
        "",
        *(ENV.markdown().splitlines() if ENV is not None else []),
        "",
        f"Corpus: `tests/scan/corpus/generate.py` plus the 14 issue-12 samples of `tests/scan/test_adversarial.py` "
        f"(rows `adversarial/...`), {len(samples)} files ({mal} malicious, {len(samples) - mal} "
        "benign). 'Detected' = the tool's default failing verdict for that file (Bastion: a finding at HIGH or "
        "above; picklescan: exit-1 issues; modelscan: any issue; fickling: severity above LIKELY_SAFE; ModelAudit: "
        "a critical or warning issue). An error "
        "or a skipped file is not a detection. Times: median of "
        f"{args.runs} runs, whole process including interpreter start-up (every tool's Python sources "
        "byte-compiled first, as `pip install` leaves them); peak RSS from wait4. "
        "'In-process scan' times only the scan call after the tool is imported (median of 3 calls in one "
        "process): it separates scanning cost from start-up cost.",
        "",
        "## Detection on the corpus",
        "",
        "| tool | detected | false positives | files with errors | files skipped | corpus time (s) "
        "| corpus peak RSS (MiB) | in-process scan of the corpus (s) | exit code on the corpus folder |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        s = r["summary"]
        lines.append(f"| {name} | {s['detected']}/{s['malicious']} ({_pct(s['detected'], s['malicious'])}) | "
                     f"{s['fp']}/{s['benign']} ({_pct(s['fp'], s['benign'])}) | {s['errors']} | {s['skipped']} | "
                     f"{r['corpus']['seconds']:.2f} | {r['corpus']['rss_mib']} | {_ip(r, 'corpus')} | "
                     f"{r['corpus']['exit']} |")
    ps = results.get("picklescan")
    lines += ["", *bars(results, args.size_mb)]
    lines += ["", *legacy_torch(results, samples), "", *allowed_load()]
    lines += ["", f"## Large PyTorch checkpoint ({big.stat().st_size / 2**20:.0f} MiB state_dict of random float32 "
              "tensors) and a 64 MiB one", "",
              f"| tool | {args.size_mb} MiB: time (s) | vs picklescan | peak RSS (MiB) | in-process scan (s) "
              "| 64 MiB: time (s) | peak RSS (MiB) | in-process scan (s) |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        ratio = f"{r['big']['seconds'] / ps['big']['seconds']:.2f}x" if ps else "-"
        lines.append(f"| {name} | {r['big']['seconds']:.2f} | {ratio} | {r['big']['rss_mib']} | {_ip(r, 'big')} | "
                     f"{r['small']['seconds']:.2f} | {r['small']['rss_mib']} | {_ip(r, 'small')} |")
    lines += ["", "Commands timed (`{path}` = corpus folder or checkpoint):", ""]
    for name, r in results.items():
        cmd_shown = " ".join(shlex.quote(c) for c in r["corpus_cmd"]).replace(str(REPO) + "/", "")
        lines.append(f"- {name}: `{cmd_shown}`" + (f" — {r['note']}" if r["note"] else ""))
    lines += ["", "## Per-sample verdicts (malicious)", "",
              "✔ detected, · missed, E error (not detected), S skipped by the tool.", ""]
    names = list(results)
    lines.append("| sample | format | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))

    def cell(v: dict[str, Any]) -> str:
        if v["flagged"]:
            return "✔"
        if v["error"]:
            return "E"
        return "S" if v["skipped"] else "·"

    for s in samples:
        if s["malicious"]:
            lines.append(f"| {s['name']} | {s['format']} | " + " | ".join(cell(results[n]['verdicts'][s['name']])
                                                                        for n in names) + " |")
    lines += ["", "## False positives (benign)", ""]
    for name, r in results.items():
        fp = r["summary"]["fp_names"]
        lines.append(f"- {name}: " + (", ".join(fp) if fp else "none"))
    lines += ["", "## Errors", ""]
    for name, r in results.items():
        en = r["summary"]["error_names"]
        ex = [f"{n} ({r['verdicts'][n]['error'][:90]})" for n in en[:6]]
        lines.append(f"- {name}: {len(en)}" + (": " + "; ".join(ex) + (" …" if len(en) > 6 else "") if en else ""))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
