"""Shared helpers for CLI commands: console, JSON output, progress bars, opening the project."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# In a terminal rich wraps to the window. Anywhere else (a pipe, a log file, CI) a line is never cut or
# wrapped at 80 columns: the console is as wide as the longest line and tables take their natural width.
_PIPE_WIDTH = 100_000


def make_console(*, stderr: bool = False) -> Console:
    """A console for CLI output: terminal width in a terminal; unbounded (no wrap, no cut) otherwise."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=_PIPE_WIDTH, soft_wrap=True)


console = make_console()
err_console = make_console(stderr=True)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout (no rich markup, safe to pipe)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def project(root: str | None = None) -> Any:
    """Open the Bastion project for a command (nearest above the cwd unless ``--project`` says otherwise)."""
    from bastion.project import open_project

    return open_project(root)


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar as a ``(done, total)`` callback for library functions."""
    if not enabled or not err_console.is_terminal:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update
