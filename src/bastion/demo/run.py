"""The demo driver: a throwaway project, then each lifecycle stage in order."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bastion.project import Project, init_project

__all__ = ["DemoContext", "run_demo"]


@dataclass
class DemoContext:
    """What every demo stage gets: the project, a console, a work folder and shared state."""

    project: Project
    console: Console
    workdir: Path
    state: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        self.console.print(f"  {text}", highlight=False)


def _stages() -> list[tuple[str, Callable[[DemoContext], None]]]:
    from bastion.demo import gates_stage, monitor_stage, prepare_stage, serve_stage, train_stage, vulns_stage

    return [
        ("Find and protect PII, validate (stage 1)", prepare_stage.run),
        ("Train and version (stage 2)", train_stage.run),
        ("Promote, roll back, load by alias (stage 2)", train_stage.registry_roundtrip),
        ("Gate, mitigate, sign, promote (stage 3)", gates_stage.run),
        ("Serve securely: keys, validation, audit, hot rollback (stage 3)", serve_stage.run),
        ("Monitor drift, labels, attacks; alert and roll back (stage 4)", monitor_stage.run),
        ("Check advisories and re-scan what is served (stage 4)", vulns_stage.run),
    ]


def _finish(ctx: DemoContext) -> None:
    from bastion.audit.verify import verify_project

    # the chain, its signed checkpoints and the tables it caches; an intact head is sealed by a checkpoint
    report = verify_project(ctx.project, seal=True)
    status = "intact" if report.ok else "BROKEN: " + "; ".join(report.problems)
    ctx.say(f"Audit log: {report.chain.entries} entries, {report.checkpoints.checkpoints} signed checkpoints, "
            f"chain {status}")
    if not report.ok:
        raise RuntimeError("audit chain broken in the demo")


def run_demo(directory: str | Path | None = None, *, console: Console | None = None) -> DemoContext:
    """Run every stage in a fresh project under ``directory``.

    Without ``directory`` the project goes to a new temp folder that is removed when the demo ends (also when
    it fails); the returned context's project is then closed and gone. Pass a folder to keep the project.
    """
    console = console or Console()
    if directory:
        return _run_in(Path(directory), console, keep=True)
    scratch = Path(tempfile.mkdtemp(prefix="bastion-demo-"))
    try:
        return _run_in(scratch, console, keep=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_in(root: Path, console: Console, *, keep: bool) -> DemoContext:
    root.mkdir(parents=True, exist_ok=True)
    project = init_project(root)
    ctx = DemoContext(project=project, console=console, workdir=root)
    try:
        console.print(f"[bold]Bastion demo[/] in {root}")
        for title, stage in [*_stages(), ("Verify the audit log", _finish)]:
            t0 = time.perf_counter()
            console.print(f"[bold cyan]▶ {title}[/]")
            stage(ctx)
            console.print(f"  [dim]({time.perf_counter() - t0:.1f} s)[/]")
    finally:
        if not keep:
            project.close()
    if keep:
        console.print(f"[bold green]Demo complete.[/] Project left in {root}")
    else:
        console.print("[bold green]Demo complete.[/] The throwaway project is removed, with the files named above "
                      "(the HTML report too); `bastion demo --dir DIR` keeps them to explore.")
    return ctx
