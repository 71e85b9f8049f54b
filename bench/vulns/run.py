"""Vulnerability monitoring benchmark: import a 50,000-record synthetic OSV export, then check 1,000 served
model versions (each with its own recorded environment) against it. Bars: import in seconds, check < 1 s.

    PYTHONPATH=src python bench/vulns/run.py [--records 50000] [--versions 1000] [--repeat 3]

Writes bench/vulns/results.json and prints a Markdown table (RESULTS.md quotes it).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # bench/: _freeze records versions and load
from _freeze import record_environment  # noqa: E402


def _installed() -> dict[str, str]:
    out = {}
    for d in importlib.metadata.distributions():
        name = d.metadata["Name"] if d.metadata else None
        if name:
            out[str(name).lower()] = str(d.version)
    return dict(sorted(out.items()))


def make_export(path: Path, n: int, env: dict[str, str], *, affected_share: float = 0.005,
                seed: int = 0) -> dict[str, Any]:
    """A zip of ``n`` OSV records shaped like the PyPI export: 5,000 package names (the installed ones among
    them, ~10 records each), ECOSYSTEM ranges plus explicit version lists, aliases, CVSS vectors, 0.5%
    withdrawn, 2% npm. A record on an installed package affects the installed version with probability
    ``affected_share``; otherwise it names older releases only (most advisories are fixed by the time a
    version is installed)."""
    rng = random.Random(seed)
    names = list(env) + [f"synthetic-pkg-{i}" for i in range(max(0, 5000 - len(env)))]
    vectors = ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
               "CVSS:3.1/AV:L/AC:H/PR:L/UI:R/S:U/C:L/I:N/A:N", "CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N"]
    size = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            name = rng.choice(names)
            hit = name in env and rng.random() < affected_share
            if hit:  # the installed version is listed and inside the range
                listed = [env[name]] + [f"0.0.{k}" for k in range(rng.randint(0, 20))]
                events = [{"introduced": "0"}, {"fixed": "99999"}]
            else:  # older releases only: 0.0.x, below anything installed here
                top = rng.randint(1, 40)
                listed = [f"0.0.{k}" for k in range(top)]
                events = [{"introduced": "0" if i % 4 == 0 else "0.0.0"}, {"fixed": f"0.0.{top}"}]
            rec: dict[str, Any] = {
                "schema_version": "1.6.0",
                "id": f"PYSEC-2026-{i}" if i % 3 else f"GHSA-{i:04x}-syn{i % 97:02d}-bench",
                "modified": f"2026-0{1 + i % 9}-01T00:00:00Z",
                "aliases": [f"CVE-2026-{10000 + i}"],
                "summary": f"Synthetic advisory {i} for {name}",
                "affected": [{
                    "package": {"ecosystem": "PyPI" if i % 50 else "npm", "name": name},
                    "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    "versions": listed,
                }],
                "severity": [{"type": "CVSS_V3", "score": rng.choice(vectors)}],
            }
            if i % 200 == 0:
                rec["withdrawn"] = "2026-02-01T00:00:00Z"
            data = json.dumps(rec).encode()
            size += len(data)
            zf.writestr(f"{rec['id']}.json", data)
    return {"records": n, "json_bytes": size, "zip_bytes": path.stat().st_size, "affected_share": affected_share}


def seed_versions(project: Any, count: int, env: dict[str, str], seed: int = 1) -> None:
    """``count`` model versions under an alias, each with its own environment document (the worst case:
    nothing shared), made from the running interpreter's real package list with versions perturbed."""
    from sqlalchemy import insert

    from bastion.registry._common import now_iso
    from bastion.store.schema import aliases, models

    rng = random.Random(seed)
    rows, alias_rows = [], []
    base = project.log_model(_tiny_model(), name="seed")  # one real artifact the rows point at
    for i in range(count):
        packages = dict(env)
        for name in rng.sample(sorted(packages), k=min(20, len(packages))):  # 20 packages at other versions
            packages[name] = f"{rng.randint(1, 5)}.{rng.randint(0, 6)}.{rng.randint(0, 8)}"
        doc = {"schema_version": 1, "python": platform.python_version(), "packages": packages}
        digest = project.blobs.put_bytes(json.dumps(doc, sort_keys=True).encode())
        name, version = f"model-{i // 4}", i % 4 + 1
        rows.append({"name": name, "version": version, "digest": base.digest, "artifact_kind": "file",
                     "artifact_name": base.artifact_name, "size": base.size, "framework": base.framework,
                     "flavor": base.flavor, "environment_digest": digest, "scan_status": "clean",
                     "created_at": now_iso(), "created_by": "bench", "metrics_json": "{}", "params_json": "{}",
                     "tags_json": "{}", "description": "", "datasets_json": "[]", "code_json": "{}"})
        alias_rows.append({"kind": "model", "name": name, "alias": f"a{version}", "version": version,
                           "updated_at": now_iso(), "updated_by": "bench"})
    with project.transaction() as conn:
        conn.execute(insert(models), rows)
        conn.execute(insert(aliases), alias_rows)


def _tiny_model() -> Any:
    from sklearn.dummy import DummyClassifier

    return DummyClassifier().fit([[0], [1]], [0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--versions", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--affected-share", type=float, default=0.005,
                    help="share of records on installed packages that affect the installed version")
    args = ap.parse_args()
    run_env = record_environment(HERE, {"bastion": sys.executable})

    from bastion.project import init_project
    from bastion.vulns import check as check_mod
    from bastion.vulns import check_versions, import_advisories

    env = _installed()
    work = Path(tempfile.mkdtemp(prefix="bench-vulns-"))
    try:
        export = work / "osv-PyPI.zip"
        t0 = time.perf_counter()
        shape = make_export(export, args.records, env, affected_share=args.affected_share)
        gen_s = time.perf_counter() - t0
        shape["sha256"] = "sha256:" + hashlib.sha256(export.read_bytes()).hexdigest()

        imports, reimports = [], []
        project = None
        for r in range(args.repeat):
            if project is not None:
                project.close()
            project = init_project(work / f"proj{r}")
            t0 = time.perf_counter()
            res = import_advisories(project, export)
            imports.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            again = import_advisories(project, export)
            reimports.append(time.perf_counter() - t0)
        assert project is not None
        counts = {k: getattr(res, k) for k in ("records", "added", "withdrawn", "ignored")}
        counts["reimport_unchanged"] = again.unchanged

        seed_versions(project, args.versions, env)
        cold, warm = [], []
        report = None
        for _ in range(args.repeat):
            # cold (a fresh `bastion vulns check` process): every environment document read and verified from
            # the store, every advisory compiled and matched; warm: `monitor run`'s long-lived process
            check_mod._env_cache.clear()
            check_mod._cache.update(key=None, entries={}, rows={}, hits={})
            t0 = time.perf_counter()
            report = check_versions(project)
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            report = check_versions(project)
            warm.append(time.perf_counter() - t0)
        assert report is not None
        matched = sum(len(v.matches) for v in report.versions)
        results = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average": os.getloadavg(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "bastion_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                             text=True, cwd=HERE, check=False).stdout.strip(),
            "export": shape,
            "generate_s": round(gen_s, 2),
            "import_s": [round(x, 3) for x in imports],
            "import_median_s": round(statistics.median(imports), 3),
            "reimport_median_s": round(statistics.median(reimports), 3),
            "import_counts": counts,
            "versions": len(report.versions),
            "packages_per_environment": len(env),
            "check_cold_s": [round(x, 3) for x in cold],
            "check_cold_median_s": round(statistics.median(cold), 3),
            "check_warm_median_s": round(statistics.median(warm), 3),
            "affected_versions": len(report.affected),
            "matches": matched,
            "matches_per_version_median": statistics.median(len(v.matches) for v in report.versions),
        }
        run_env.finish()
        results["environment"] = run_env.markdown()
        (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(results, indent=2))
        print()
        print("| measure | median | runs |")
        print("|---|---|---|")
        print(f"| import {args.records:,} records (fresh project) | {results['import_median_s']} s | {imports} |")
        print(f"| re-import, unchanged | {results['reimport_median_s']} s | {reimports} |")
        print(f"| check {len(report.versions):,} versions, cold | {results['check_cold_median_s']} s | {cold} |")
        print(f"| check {len(report.versions):,} versions, warm | {results['check_warm_median_s']} s | {warm} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(run_env.markdown())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
