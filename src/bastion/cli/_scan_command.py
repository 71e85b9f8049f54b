"""`bastion model scan` itself: one implementation for the Typer command and the fast entry path.

`fast_path` runs ``bastion model scan PATH [options]`` without building the Typer app (no Typer, Rich
or pydantic import), so a scan costs what scanning costs; anything else goes to the Typer app.
"""

from __future__ import annotations

import os
import sys

from bastion.errors import EXIT_CHECKS_FAILED, EXIT_OK, EXIT_USAGE, ScanError

TYPE_CHECKING = False  # typing stays off the fast path; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from pathlib import Path

__all__ = ["FORMATS", "fast_path", "parse_fast", "run_scan"]

FORMATS = ("text", "json", "sarif")

# The `model scan` options the fast path understands (the Typer command in model_scan.py declares
# the same ones; a test keeps the two lists equal). Value options, then flags.
VALUE_OPTIONS = {"--format": "fmt", "-f": "fmt", "--output": "output", "-o": "output", "--fail-on": "fail_on",
                 "--project": "project_root"}
FLAG_OPTIONS = {"--json": ("json_out", True), "--digest": ("digest", True), "--no-digest": ("digest", False)}


def run_scan(
    target: str,
    *,
    fmt: str = "text",
    output: str | os.PathLike[str] | None = None,
    fail_on: str = "high",
    json_out: bool = False,
    digest: bool = False,
    project_root: str | None = None,
) -> int:
    """Scan ``target`` and print or write the report; return the exit code (0 clean, 1 findings, 2 unreadable).

    Raises
    ------
    ScanError
        For a bad option value or a target that is neither a path nor a model reference.
    """
    from bastion.scan import Severity, scan_path

    kind = "json" if json_out else fmt.lower()
    if kind not in FORMATS:
        raise ScanError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}.")
    try:
        threshold = Severity.parse(fail_on)
    except ValueError as exc:
        raise ScanError(f"--fail-on: {exc}") from None
    path = _resolve(target, project_root)
    if output is not None:
        _check_output(output, path)
    with _progress(enabled=kind == "text") as bar:
        report = scan_path(path, progress=bar, digest=digest)
    if kind == "json":
        import json

        text = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
    elif kind == "sarif":
        import json

        text = json.dumps(report.to_sarif(), indent=2) + "\n"
    else:
        text = report.to_text()
    if output is not None:
        from pathlib import Path

        out = Path(output)  # printed the same whichever way the command line was parsed
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ScanError(f"Cannot write the report to {str(out)!r} ({exc.strerror or exc}); choose a "
                            "writable file path for --output.") from None
        _print(f"Wrote the {kind} report to {out}.\n")
    elif kind == "text" and _stdout_is_terminal():
        from rich.console import Console

        from bastion.scan.report import render

        render(report, Console())
    else:
        _print(text)
    if report.errors:
        return EXIT_USAGE
    return EXIT_OK if report.is_clean(threshold) else EXIT_CHECKS_FAILED


def _check_output(output: str | os.PathLike[str], scanned: Path) -> None:
    """Refuse an ``--output`` that is a folder or the scanned file itself (the report would replace the model)."""
    if os.path.isdir(output):
        raise ScanError(f"--output {os.fspath(output)!r} is a folder; give a file path for the report.")
    try:
        same = os.path.exists(output) and scanned.is_file() and os.path.samefile(output, scanned)
    except OSError:
        same = False
    if same:
        raise ScanError(f"--output {os.fspath(output)!r} is the file being scanned; writing the report there "
                        "would replace it. Choose another file for the report.")


def _resolve(target: str, project_root: str | None) -> Path:
    from pathlib import Path

    path = Path(target)
    if path.exists() or path.is_symlink():
        if "/" not in target and _reads_as_model_reference(target):
            # a file planted under a version's name must not stand in for the registered version
            raise ScanError(
                f"{target!r} is both a file here and a model reference. Write ./{target} to scan the file, "
                "or run the command from another folder to scan the registered version."
            )
        return path
    if ":" in target or "@" in target:
        from bastion.project import open_project

        resolved: Path = open_project(project_root).model_path(target)
        return resolved
    raise ScanError(
        f"Cannot scan {target!r}: it is neither an existing file or folder nor a model reference "
        "(NAME:VERSION or NAME@ALIAS)."
    )


def _reads_as_model_reference(target: str) -> bool:
    if ":" not in target and "@" not in target:
        return False
    from bastion.errors import RegistryError
    from bastion.registry.refs import parse_ref

    try:
        ref = parse_ref(target)
    except RegistryError:
        return False
    return ref.version is not None or ref.alias is not None


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _stdout_is_terminal() -> bool:
    # rich tables and colours for people at a terminal; plain text for pipes, files and CI logs
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def _progress(*, enabled: bool) -> AbstractContextManager[Callable[[int, int], None] | None]:
    """The CLI's rich progress bar on a terminal; no bar (and no rich import) otherwise."""
    stderr_tty = getattr(sys.stderr, "isatty", None)
    # rich also draws on non-terminals when told to by these variables; let it decide then
    forced = any(os.environ.get(v) for v in ("FORCE_COLOR", "TTY_COMPATIBLE", "FORCE_TERMINAL"))
    if enabled and ((stderr_tty and stderr_tty()) or forced):
        from bastion.cli._common import progress_bar

        return progress_bar("Scanning")
    return _no_progress()


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _no_progress() -> AbstractContextManager[None]:
    return _NoProgress()


def parse_fast(args: list[str]) -> dict[str, object] | None:
    """Keyword arguments for `run_scan` from ``model scan PATH [options]``, or None to let Typer parse.

    Only the plain forms are taken (``--opt VALUE``, ``--opt=VALUE``, ``-f VALUE``, flags) with an
    existing file or folder as the one argument. Anything else (``--help``, root options such as
    ``--debug``, a NAME:VERSION reference, a missing path, an unknown or repeated option, ``--``)
    returns None, and the Typer app, which calls the same `run_scan`, handles it, errors included.
    """
    if len(args) < 3 or args[0] != "model" or args[1] != "scan":
        return None
    kwargs: dict[str, object] = {}
    target: str | None = None
    rest = args[2:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            if target is not None or not arg:
                return None
            target = arg
            continue
        name, eq, value = arg.partition("=")
        if eq and not name.startswith("--"):
            return None  # click reads ``-o=x`` as the value "=x"; let it
        if name in VALUE_OPTIONS:
            if not eq:
                if i >= len(rest):
                    return None
                value = rest[i]
                i += 1
            key = VALUE_OPTIONS[name]
            if not value or value.startswith("-") or key in kwargs:
                return None
            kwargs[key] = value
        elif name in FLAG_OPTIONS and not eq:
            key, flag = FLAG_OPTIONS[name]
            if key in kwargs:
                return None
            kwargs[key] = flag
        else:
            return None
    if target is None or not (os.path.exists(target) or os.path.islink(target)):
        return None
    kwargs["target"] = target
    return kwargs


def fast_path(args: list[str]) -> Callable[[], int] | None:
    """A call that runs ``args`` as `model scan` without Typer, or None when Typer must parse them."""
    kwargs = parse_fast(args)
    if kwargs is None:
        return None

    def run() -> int:
        return run_scan(**kwargs)  # type: ignore[arg-type]

    return run
