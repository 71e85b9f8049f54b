"""The `bastion` command: groups for data, models, gates, keys, audit, monitoring and the demo.

Errors from the library become a one-line message and an exit code (0 ok, 1 checks failed,
2 usage or input error, 3 internal error); `--debug` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import typer

from bastion.errors import EXIT_INTERNAL, EXIT_USAGE, BastionError

app = typer.Typer(
    name="bastion",
    help="Bastion: secure MLOps from raw data to monitored production.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state: dict[str, Any] = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to stderr."),
) -> None:
    _state["debug"] = debug
    if verbose or debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("bastion")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if debug else logging.INFO)


def _register_groups() -> None:
    from bastion.cli import audit, data, demo, gate, keys, model, project_cmds

    project_cmds.register(app)
    app.add_typer(data.app, name="data")
    app.add_typer(model.app, name="model")
    app.add_typer(gate.app, name="gate")
    app.add_typer(keys.app, name="keys")
    app.add_typer(audit.app, name="audit")
    demo.register(app)
    try:
        from bastion.cli import monitor
    except ImportError:  # the monitoring stage is optional while it is being built
        return
    app.add_typer(monitor.app, name="monitor")


_register_groups()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and map errors to exit codes."""
    from bastion.cli._common import err_console

    try:
        rv = app(args=argv, standalone_mode=False)
    except BastionError as e:
        if _state["debug"]:
            raise
        from rich.text import Text

        err_console.print(Text("error: ", style="bold red") + Text(e.message), highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("aborted.")
        sys.exit(EXIT_USAGE)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # usage errors: unknown command, bad option value
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"error: {e}")
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        err_console.print("interrupted.")
        sys.exit(130)
    except Exception as e:  # a bug: say so, keep the traceback for --debug
        if _state["debug"]:
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(e).__name__}: {e}\nRun again with --debug for the traceback, "
            "and report it.",
            highlight=False,
        )
        sys.exit(EXIT_INTERNAL)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
