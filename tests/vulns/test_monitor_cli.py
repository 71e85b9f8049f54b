"""`bastion monitor run` re-checks advisories and re-scans the served versions when due (default daily)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.monitor.alerts import stored_alerts
from bastion.vulns import import_advisories
from tests.vulns.conftest import installed, osv, write

runner = CliRunner()


def test_monitor_run_includes_the_vulnerability_pass(project: Any, tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    df = pd.DataFrame({"a": np.arange(60.0), "b": np.arange(60.0) % 7, "label": [0, 1] * 30})
    dv = project.register_dataset(df, name="d")
    mv = project.log_model(LogisticRegression().fit(df[["a", "b"]], df["label"]), name="m", datasets=[dv.ref])
    project.promote(mv.ref, alias="production")
    import_advisories(project, write(tmp_path / "a.json", osv("GHSA-mon-0003", versions=[installed("scikit-learn")])))

    r = runner.invoke(app, ["monitor", "run", "--model", "m@production", "--once", "--vulns-every", "off"])
    assert r.exit_code == 0 and "Vulnerabilities:" not in r.output, r.output

    r = runner.invoke(app, ["monitor", "run", "--model", "m@production", "--once"])
    assert r.exit_code == 1, r.output
    assert "1 affected; 1 re-scanned" in r.output and "GHSA-mon-0003" in r.output
    alerts = stored_alerts(project.db, kind="alert")
    assert [a["rule"] for a in alerts] == ["vulnerability"]
    state = json.loads((project.home / "monitor" / "vulns-m.json").read_text())
    assert state["last_run"] and (project.home / "monitor" / "vulns-m.json").stat().st_mode & 0o777 == 0o600

    # not due again within the day: the window runs, the vulnerability pass does not
    r = runner.invoke(app, ["monitor", "run", "--model", "m@production", "--once"])
    assert r.exit_code == 0 and "Vulnerabilities:" not in r.output, r.output
    time.sleep(1.05)
    r = runner.invoke(app, ["monitor", "run", "--model", "m@production", "--once", "--vulns-every", "1s"])
    assert r.exit_code == 1 and "Vulnerabilities:" in r.output

    time.sleep(1.05)
    r = runner.invoke(app, ["monitor", "run", "--model", "m@production", "--once", "--vulns-every", "1s", "--json"])
    doc = json.loads(r.output)  # one JSON document per window, the vulnerability pass inside it
    assert r.exit_code == 1 and doc["vulnerabilities"]["check"]["affected"] == ["m:1"]
    assert doc["vulnerabilities"]["rescans"][0]["status"] == "clean" and "drift" in doc

    r = runner.invoke(app, ["monitor", "run", "--model", "m@production", "--once", "--vulns-every", "daily"])
    assert r.exit_code != 0 and "Duration" in str(r.exception or r.output)
