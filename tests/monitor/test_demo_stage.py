"""The demo's monitoring stage: shifted traffic, labels, drift alert, rollback, HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from bastion.demo.monitor_stage import run

from .monitor_helpers import make_data


class _Ctx:
    def __init__(self, project: Any, workdir: Path, state: dict[str, Any]) -> None:
        self.project, self.workdir, self.state = project, workdir, state
        self.console = Console(record=True, width=200)

    def say(self, text: str) -> None:
        self.console.print(text)


def test_demo_stage(served: dict[str, Any], tmp_path: Path) -> None:
    p = served["project"]
    ctx = _Ctx(p, tmp_path, {"approved_ref": "risk:2", "test_df": make_data(1500, 9), "target": "y",
                             "features": ["age", "income", "sex"]})
    run(ctx)
    text = ctx.console.export_text()
    assert "ALERT" in text and "Rolled back" in text and "unauthorized" in text
    assert "data-drift" in ctx.state["monitor_alerts"]
    assert p.get_model("risk@production").version == 1
    assert ctx.state["monitor_report"].exists()
