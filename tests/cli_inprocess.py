"""`bastion ARGS…` run in-process through the real entry point, for tests that need exit codes and error mapping
without a new interpreter per command (one helper instead of a copy per test module)."""

from __future__ import annotations

import contextlib
import io


def run_cli(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``bastion ARGS…`` (SystemExit mapped to its code, as the shell sees it)."""
    from bastion.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()
