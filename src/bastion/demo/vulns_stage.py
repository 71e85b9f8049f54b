"""Demo stage 4 (vulnerabilities): OSV advisories checked against the served versions' recorded environments,
and the production artifact re-scanned with today's scanner rules.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["run"]


def run(ctx: Any) -> None:
    from bastion.vulns import check_versions, import_advisories
    from bastion.vulns.rescan import rescan

    p = ctx.project
    # A tiny OSV export as it would arrive from the PyPI feed: an old scikit-learn advisory (the demo's
    # environment is newer) and an npm record (another ecosystem: ignored).
    records = [
        {"schema_version": "1.6.0", "id": "PYSEC-DEMO-0001", "modified": "2026-01-01T00:00:00Z",
         "aliases": ["CVE-2020-28975"], "summary": "scikit-learn svm denial of service (demo copy)",
         "affected": [{"package": {"ecosystem": "PyPI", "name": "scikit-learn"},
                       "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "0.24.0"}]}]}],
         "database_specific": {"severity": "MODERATE"}},
        {"schema_version": "1.6.0", "id": "GHSA-demo-npm0-0001", "modified": "2026-01-01T00:00:00Z",
         "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"}, "versions": ["1.0.0"]}]},
    ]
    export = ctx.workdir / "osv-demo.json"
    export.write_text(json.dumps(records), encoding="utf-8")
    imported = import_advisories(p, export)
    ctx.say(f"Imported {imported.added} PyPI advisory ({imported.ignored} record of another ecosystem ignored), "
            f"audited with digest {imported.digest[:19]}…")
    report = check_versions(p)
    served = ", ".join(f"{v.ref} ({', '.join(v.aliases)})" for v in report.versions)
    ctx.say(f"Advisories checked against {served}: "
            + (f"{len(report.affected)} affected" if report.affected else "none affected (scikit-learn is newer)"))
    name = str(ctx.state["approved_ref"]).split(":", 1)[0]
    result = rescan(p, f"{name}@production")
    ctx.say(f"Re-scanned {result.ref} (digest verified) with rules {result.rules_version}: {result.status}")
