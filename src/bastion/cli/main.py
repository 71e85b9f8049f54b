"""The `bastion` command: groups for data, models, gates, keys, audit, monitoring and the demo.

Errors from the library become a one-line message and an exit code (0 ok, 1 checks failed,
2 usage or input error, 3 internal error); `--debug` shows the traceback.
`bastion model scan PATH` runs without building the Typer app (see `bastion.cli._scan_command`):
typer is imported only when the command line needs it.
"""

from __future__ import annotations

import os
import sys

from bastion.errors import EXIT_INTERNAL, EXIT_USAGE, BastionError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import typer

_state: dict[str, Any] = {"debug": False}
_root_app: typer.Typer | None = None

ROOT_HELP = """Bastion: secure MLOps from raw data to monitored production.

\b
Concepts:
  project     A folder with bastion.toml and .bastion/ (metadata database, artifacts, keys);
              commands use the nearest one above the current folder (`bastion init` makes one).
  reference   NAME:VERSION (income:3) or NAME@ALIAS (income@production), for datasets and models.
  dataset     A versioned table (CSV, Parquet, JSONL) with its schema, statistics and lineage.
  model       A versioned artifact, scanned before it is stored. Formats: scikit-learn via skops,
              pickle/joblib (restricted unpickler), PyTorch, ONNX, Keras/HDF5, safetensors, NumPy,
              GGUF and archives of these; anything else is refused.
  gate        The checks of bastion-policy.yaml (performance, fairness, diversity, robustness,
              privacy, supply chain) run on a version and holdout data; a pass is recorded as a
              signed attestation. An alias's rules (e.g. production: gate, signature, scan)
              decide what `model promote` and `serve` accept.
  audit log   Every change is an entry in one hash-chained log (`bastion audit verify`).

\b
Exit codes: 0 ok, 1 checks failed (findings, gate failed, drift alert), 2 usage or input error,
3 internal error (--debug shows the traceback). Every listing takes --json.
"""


def _help_width() -> dict[str, Any]:
    """Help text keeps its lines whole when it goes to a pipe or a file (no wrapping at 80 columns)."""
    if sys.stdout.isatty():
        return {}
    return {"max_content_width": 10_000, "terminal_width": 10_000}


def _version_text() -> str:
    from importlib import metadata

    import bastion

    try:
        v = metadata.version("bastion-mlops")
    except metadata.PackageNotFoundError:
        v = bastion.__version__
    return f"bastion {v} (Python {sys.version.split()[0]})"


def _print_version(value: bool) -> None:
    if value:
        import typer

        sys.stdout.write(_version_text() + "\n")
        raise typer.Exit(0)


def _build_app() -> typer.Typer:
    """The root Typer app with its global options (built once, on first use)."""
    global _root_app
    if _root_app is not None:
        return _root_app
    import typer
    import typer.core

    # Plain (click) help: explains every option in words, wraps only to a real terminal's width and is
    # never cut in a pipe; rich's help boxes truncate at 80 columns and print `<bool>` for flags.
    typer.core.HAS_RICH = False
    app = typer.Typer(
        name="bastion",
        help=ROOT_HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings=_help_width(),
    )

    @app.callback()
    def _root(
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to stderr."),
        version: bool = typer.Option(False, "--version", is_eager=True, help="Print the version and exit.",
                                     callback=_print_version),
    ) -> None:
        import logging

        _state["debug"] = debug
        if verbose or debug:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            logger = logging.getLogger("bastion")
            logger.addHandler(handler)
            logger.setLevel(logging.DEBUG if debug else logging.INFO)

    _root_app = app
    return app


# group name -> (module, attribute): a Typer sub-app, or a ``register(app)`` function for top-level commands
_GROUPS: dict[str, tuple[str, str]] = {
    "init": ("bastion.cli.project_cmds", "register"),
    "gc": ("bastion.cli.project_cmds", "register"),
    "doctor": ("bastion.cli.doctor", "register"),
    "data": ("bastion.cli.data", "app"),
    "model": ("bastion.cli.model", "app"),
    "gate": ("bastion.cli.gate", "app"),
    "keys": ("bastion.cli.keys", "app"),
    "audit": ("bastion.cli.audit", "app"),
    "monitor": ("bastion.cli.monitor", "app"),
    "vulns": ("bastion.cli.vulns", "app"),
    "serve": ("bastion.cli.serve", "register"),
    "ui": ("bastion.cli.ui", "register"),
    "users": ("bastion.cli.users", "app"),
    "demo": ("bastion.cli.demo", "register"),
}
_loaded: set[str] = set()


def _register_groups(only: str | None = None) -> None:
    """Attach command groups; with ``only``, just the one the command line asks for (fast start-up)."""
    import importlib

    app = _build_app()
    names = [only] if only in _GROUPS else list(_GROUPS)
    for name in names:
        module_name, attr = _GROUPS[name]
        if module_name in _loaded:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:  # a stage whose CLI is not part of this build
                continue
            raise
        _loaded.add(module_name)
        target = getattr(module, attr)
        if attr == "app":
            app.add_typer(target, name=name)
        else:
            target(app)


def __getattr__(name: str) -> typer.Typer:
    """``app``: the whole command tree, every group attached (for tests and embedding)."""
    if name == "app":
        _register_groups()
        return _build_app()
    raise AttributeError(name)


def _first_command(argv: list[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and map errors to exit codes."""
    from bastion.cli._scan_command import fast_path

    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # answered without building the command tree
        sys.stdout.write(_version_text() + "\n")
        return
    # Files Bastion writes are the owner's only (0600 files, 0700 folders), whichever command writes them.
    os.umask(0o077)
    _state["debug"] = False  # the root callback sets it when Typer parses the command line
    run = fast_path(args)  # `model scan PATH ...`: the same command, without Typer's start-up
    if run is None:
        _register_groups(_first_command(args))
        app = _build_app()

        def run() -> Any:
            return app(args=args, standalone_mode=False)

    try:
        rv = run()
    except BastionError as e:
        if _state["debug"]:
            raise
        from rich.text import Text

        from bastion.cli._common import err_console

        err_console.print(Text("error: ", style="bold red") + Text(e.message), highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        from bastion.cli._common import err_console

        err_console.print("interrupted.")
        sys.exit(130)
    except Exception as e:
        _exit_for(e)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


def _exit_for(e: Exception) -> None:
    """Typer's own exceptions (from the full app only) and bugs, as messages and exit codes."""
    import typer

    from bastion.cli._common import err_console

    if isinstance(e, typer.Abort):
        err_console.print("aborted.")
        sys.exit(EXIT_USAGE)
    if isinstance(e, typer.Exit):
        sys.exit(e.exit_code)
    if isinstance(e, typer.TyperException):  # usage errors: unknown command, bad option value
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"error: {e}")
        sys.exit(EXIT_USAGE)
    # a bug: say so, keep the traceback for --debug
    if _state["debug"]:
        raise e
    err_console.print(
        f"[bold red]internal error:[/] {type(e).__name__}: {e}\nRun again with --debug for the traceback, "
        "and report it.",
        highlight=False,
    )
    sys.exit(EXIT_INTERNAL)
