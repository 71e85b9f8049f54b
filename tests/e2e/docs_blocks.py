"""Finds the code blocks of README.md and docs/**/*.md and runs them, page by page, in a scratch project.

The convention (docs/dev/conventions.md, "Code blocks in README and docs"):

* ```bash / ```sh / ```shell and ```python blocks RUN, in page order, in one scratch folder per page.
  Shell blocks share one shell state (exported variables, the current folder), like a terminal
  session; Python blocks share one namespace, like one REPL. Each block must exit 0.
* ```text, ```console-output and ```output blocks are shown, never run (sample output, diagrams,
  commands that need what a test cannot have: a network, minutes of work, a cluster).
* ```yaml / ```toml / ```json / ```csv / ```ini / ```html are data: not run, unless a directive
  writes them to a file (``file=PATH``) that later blocks use.
* A fence without a language fails the test: say which of the above it is.
* A directive is an HTML comment on the line(s) just before a block:
  ``<!-- docs-test: exit=1 -->`` the block must exit with 1 (a gate that fails, drift found);
  ``<!-- docs-test: bounded=8 -->`` a long-running command (a server, ``--every``): it must still be
  running, or have exited 0, after 8 s, and is then stopped;
  ``<!-- docs-test: file=bastion-policy.yaml -->`` writes the block to that file in the scratch folder.
* Hidden set-up the reader need not see (making sample data) goes in a block inside
  ``<!-- docs-test: hidden`` … ``-->``; it runs in order with the visible ones.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RUN_SHELL = {"bash", "sh", "shell"}
RUN_PYTHON = {"python", "py"}
SHOWN = {"text", "console-output", "output"}
DATA = {"yaml", "yml", "toml", "json", "csv", "ini", "html", "jinja"}
KNOWN = RUN_SHELL | RUN_PYTHON | SHOWN | DATA

_FENCE = re.compile(r"( {0,3})(`{3,}|~{3,})([\w+-]*)[^\n]*")
_DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")
_HIDDEN_OPEN = re.compile(r"<!--\s*docs-test:\s*hidden\s*")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    options: dict[str, str] = field(default_factory=dict)
    hidden: bool = False

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(text: str, page: str) -> list[Block]:
    """Every fenced block of a Markdown page, with the directive that precedes it."""
    lines = text.split("\n")
    blocks: list[Block] = []
    pending: dict[str, str] = {}
    hidden = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if not hidden and _HIDDEN_OPEN.fullmatch(line.strip()):
            hidden, i = True, i + 1
            continue
        if hidden and line.strip() == "-->":
            hidden, i = False, i + 1
            continue
        d = _DIRECTIVE.fullmatch(line.strip())
        if d:
            for tok in shlex.split(d.group(1)):
                key, _, value = tok.partition("=")
                pending[key] = value
            i += 1
            continue
        m = _FENCE.fullmatch(line)
        if m:
            indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
            body: list[str] = []
            j = i + 1
            while j < len(lines) and not re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[j]):
                body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
                j += 1
            blocks.append(Block(page, i + 1, lang, "\n".join(body) + "\n", dict(pending), hidden))
            pending = {}
            i = j + 1
            continue
        if line.strip():
            pending = {}  # a directive applies only to the block right after it
        i += 1
    return blocks


def doc_pages(root: Path) -> list[Path]:
    """README.md and every page under docs/ (docs/dev included)."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


_PY_WORKER = r'''
import json, os, sys, traceback
ns = {"__name__": "__main__"}
out = sys.stdout
sys.stdout = sys.stderr
while True:
    header = sys.stdin.readline()
    if not header:
        break
    req = json.loads(header)
    code = sys.stdin.read(req["size"])
    os.environ.clear(); os.environ.update(req["env"]); os.chdir(req["cwd"])
    try:
        exec(compile(code, req["where"], "exec"), ns)
        status = {"ok": True}
    except BaseException:
        status = {"ok": False, "error": traceback.format_exc(limit=8)}
    sys.stderr.flush()
    out.write(json.dumps(status) + "\n"); out.flush()
'''


class CliServer:
    """A ``docs_cli`` fork server for one test session (module): ``bastion`` commands start warm from it."""

    def __init__(self, base: Path, src: Path) -> None:
        self.socket = base / "cli.sock"
        env = scratch_env(base, src)  # the same clean environment the pages get (each command brings its own)
        self.log = open(base / "cli-server.log", "w")  # closed in close()
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("docs_cli.py")), "serve",
                                      str(self.socket)], cwd=base, env=env, stdin=subprocess.PIPE,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.socket.exists():  # bound before the imports: commands queue until it is warm
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"docs_cli server did not start: {(base / 'cli-server.log').read_text()}")
            time.sleep(0.02)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()  # the server stops (and kills what is still running) at end of input
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.socket.unlink(missing_ok=True)


class PageRunner:
    """Runs one page's blocks in order in ``scratch``: shell state and Python namespace carried over."""

    def __init__(self, scratch: Path, env: dict[str, str]) -> None:
        self.scratch = scratch
        self.state = scratch / ".docs-test"
        self.state.mkdir(mode=0o700)
        self.cwd = scratch / "project"
        self.cwd.mkdir()
        self.env = dict(env)
        (self.state / "exports.sh").write_text("")
        self._py: subprocess.Popen[str] | None = None

    # -- shell -----------------------------------------------------------------------------------
    def _script(self, block: Block) -> str:
        st = self.state
        return (
            f"source {shlex.quote(str(st / 'exports.sh'))}\n"
            f"cd {shlex.quote(str(self.cwd))}\n"
            "set -eo pipefail\n"
            f"{block.code}\n"
            f"export -p > {shlex.quote(str(st / 'exports.sh'))}.new && mv {shlex.quote(str(st / 'exports.sh'))}.new "
            f"{shlex.quote(str(st / 'exports.sh'))}\n"
            f"pwd > {shlex.quote(str(st / 'cwd'))}\n"
            f"env -0 > {shlex.quote(str(st / 'env'))}\n"
        )

    def run_shell(self, block: Block, *, timeout: float = 240) -> tuple[int | None, str]:
        """(exit code, or None when a bounded block was still running; combined output)."""
        log = self.state / "out.txt"
        bounded = float(block.options["bounded"]) if "bounded" in block.options else None
        with open(log, "w") as fh:
            proc = subprocess.Popen(["bash", "-c", self._script(block)], cwd=self.cwd, env=self.env,
                                    stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                rc: int | None = proc.wait(timeout=bounded if bounded is not None else timeout)
            except subprocess.TimeoutExpired:
                rc = None
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                if bounded is None:
                    return -1, log.read_text() + f"\n[docs-test] timed out after {timeout:.0f} s"
        if rc == 0 or rc is None:
            self._load_state()
        return rc, log.read_text()

    def _load_state(self) -> None:
        cwd = self.state / "cwd"
        if cwd.exists() and cwd.read_text().strip():
            self.cwd = Path(cwd.read_text().strip())
        env = self.state / "env"
        if env.exists():
            pairs = [e.split("=", 1) for e in env.read_text().split("\0") if "=" in e]
            self.env = {k: v for k, v in pairs if k not in ("PWD", "OLDPWD", "SHLVL", "_")}

    # -- python ----------------------------------------------------------------------------------
    def run_python(self, block: Block, *, timeout: float = 240) -> tuple[int, str]:
        import json
        import select

        if self._py is None:
            self._py = subprocess.Popen([sys.executable, "-u", "-c", _PY_WORKER], cwd=self.cwd, env=self.env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=open(self.state / "py-err.txt", "w"), text=True)
        assert self._py.stdin is not None and self._py.stdout is not None
        err_file = self.state / "py-err.txt"
        before = err_file.stat().st_size
        code = block.code
        self._py.stdin.write(json.dumps({"size": len(code), "env": self.env, "cwd": str(self.cwd),
                                         "where": block.where}) + "\n" + code)
        self._py.stdin.flush()
        ready, _, _ = select.select([self._py.stdout], [], [], timeout)
        if not ready:
            self.close()
            return -1, f"[docs-test] timed out after {timeout:.0f} s"
        line = self._py.stdout.readline()
        output = err_file.read_bytes()[before:].decode("utf-8", "replace")
        if not line:
            return -1, output + "\n[docs-test] the Python worker died"
        status = json.loads(line)
        return (0, output) if status["ok"] else (1, output + status["error"])

    def close(self) -> None:
        if self._py is not None:
            if self._py.stdin:
                self._py.stdin.close()
            try:
                self._py.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._py.kill()
                self._py.wait()
            self._py = None


def scratch_env(scratch: Path, src: Path, *, cli_server: Path | None = None) -> dict[str, str]:
    """A clean environment: HOME in the scratch folder, no BASTION_* from the caller, this checkout's
    source and ``bastion``/``python`` shims for the interpreter running the test first on PATH.

    ``cli_server``: the socket of a ``docs_cli`` fork server; ``bastion`` then starts warm from it (a process
    of its own, forked from one that has the modules imported), else as a fresh ``python -m bastion.cli``."""
    bin_dir = scratch / "bin"
    bin_dir.mkdir()
    (scratch / "home").mkdir()
    bastion = f"{shlex.quote(sys.executable)} -m bastion.cli"
    if cli_server is not None:
        shim = Path(__file__).with_name("docs_cli.py")
        bastion = f"{shlex.quote(sys.executable)} -I -S {shlex.quote(str(shim))} run {shlex.quote(str(cli_server))}"
    for name, cmd in (("bastion", bastion),
                      ("python", shlex.quote(sys.executable)), ("python3", shlex.quote(sys.executable))):
        shim = bin_dir / name
        shim.write_text(f"#!/bin/sh\nexec {cmd} \"$@\"\n")
        shim.chmod(0o700)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "PYTEST_", "COV_"))
            and k not in ("PYTHONPATH", "HOME", "PWD", "OLDPWD")}
    return {**keep, "HOME": str(scratch / "home"), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(src), "COLUMNS": "200", "NO_COLOR": "1", "TMPDIR": str(scratch)}
