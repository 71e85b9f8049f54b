"""A warm start for the ``bastion`` commands of the docs test: a fork server with Bastion's modules imported.

Every ``bastion`` line of a docs page used to start a fresh interpreter that imported pandas, scikit-learn,
SQLAlchemy and Bastion again (most of a second of CPU per command, about a hundred commands per suite). Here
one server process per test worker imports them once; the ``bastion`` shim on the page's PATH hands it the
command line, environment, folder and its own stdin/stdout/stderr, and the server forks a child that runs
``python -m bastion.cli`` exactly as a fresh process would (``runpy``, the same ``sys.argv``, the caller's
environment and folder, the caller's file descriptors, exit code and signals passed back). The child is a
process of its own: only the imports are shared, never state of an earlier command (each command has its own
child, forked from a server that never ran one).

Usage: ``python docs_cli.py serve SOCKET`` (the server) and ``python -I -S docs_cli.py run SOCKET ARGS...``
(the shim; falls back to a fresh ``python -m bastion.cli`` when the server is not there).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

# modules `bastion` commands import; what fails to import (an optional extra) is simply not preloaded.
# Nothing that starts threads at import (a forked child inherits none of them): no torch, no dask, no
# onnxruntime.
PRELOAD = (
    "bastion.cli.main", "bastion.cli._common", "bastion.project", "bastion.config", "bastion.errors",
    "numpy", "pandas", "pyarrow", "pyarrow.parquet", "sqlalchemy", "alembic.command", "cryptography",
    "sklearn.base", "sklearn.linear_model", "sklearn.pipeline", "sklearn.preprocessing", "sklearn.compose",
    "sklearn.metrics", "skops.io", "typer", "click", "rich.console", "rich.table", "httpx", "yaml",
    "bastion.registry", "bastion.scan", "bastion.crypto", "bastion.crypto.keys", "bastion.crypto.signing",
    "bastion.audit", "bastion.audit.verify", "bastion.data", "bastion.data.pii", "bastion.data.protect",
    "bastion.gates", "bastion.monitor", "bastion.vulns", "bastion.flavors", "bastion.serve",
    "fastapi", "uvicorn", "xgboost", "lightgbm", "onnx",
)
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


# ----------------------------------------------------------------------------------------------- shim
def _shim(path: str, args: list[str]) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        payload = json.dumps({"args": args, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
        socket.send_fds(s, [struct.pack("!I", len(payload)) + payload], [0, 1, 2])
        f = s.makefile("rb")
        first = f.readline()
        if not first.startswith(b"P"):
            raise ConnectionError("the server did not start the command")
    except OSError:
        s.close()
        os.execv(sys.executable, [sys.executable, "-m", "bastion.cli", *args])  # the cold way
    pid = int(first[1:])

    def forward(signum: int, _frame: object) -> None:
        try:
            s.sendall(b"S%d\n" % signum)
        except OSError:
            pass
    for sig in _SIGNALS:
        signal.signal(sig, forward)
    line = f.readline()
    if not line.startswith(b"X"):  # the server died: do not leave the command running
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        sys.stderr.write("docs_cli: the fork server went away\n")
        os._exit(125)
    status = int(line[1:])
    if status < 0:  # killed by a signal: die the same way, as the command itself would have
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        os._exit(128 - status)
    os._exit(status)


# --------------------------------------------------------------------------------------------- server
def _serve(path: str) -> dict[str, object] | None:
    """Accept commands until stdin closes; returns (in a forked child only) the request the child must run."""
    import importlib
    import select
    import threading

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as e:  # an optional extra that is not installed: imported cold by the child
            sys.stderr.write(f"docs_cli: not preloaded: {name}: {type(e).__name__}: {e}\n")
    try:
        import bastion.cli.main as cli_main

        cli_main._register_groups()  # the whole command tree, as `bastion.cli.main.app` builds it
    except Exception as e:
        sys.stderr.write(f"docs_cli: command tree not prebuilt: {e}\n")
    # a forked child gets only the thread that forked: no preloaded module may have started a Python thread
    # (the BLAS thread pools numpy and scipy start at import handle fork themselves, as under multiprocessing)
    assert threading.active_count() == 1, f"a preloaded module started a thread: {threading.enumerate()}"
    import gc

    gc.collect()
    gc.freeze()  # the children's collections leave the preloaded objects (and their shared pages) alone
    sys.stderr.write(f"docs_cli: ready ({len(sys.modules)} modules)\n")
    sys.stderr.flush()

    children: dict[int, tuple[socket.socket, int]] = {}  # pidfd -> (connection, pid)
    conns: dict[socket.socket, int] = {}  # connection -> pid
    while True:
        ready, _, _ = select.select([sys.stdin, listener, *conns, *children], [], [])
        for r in ready:
            if r is sys.stdin:  # the test session closed our stdin: stop, and every command still running
                if os.read(0, 4096):
                    continue
                for pid in conns.values():
                    _kill_group(pid, signal.SIGKILL)
                return None
            if r is listener:
                conn, _ = listener.accept()
                request = _read_request(conn)
                if request is None:
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:  # the command's process: drop the server's descriptors, keep the caller's
                    os.setpgid(0, 0)
                    listener.close()
                    for c in conns:
                        c.close()
                    for pidfd in children:
                        os.close(pidfd)
                    conn.close()
                    return request
                for fd in request["fds"]:  # type: ignore[attr-defined]
                    os.close(fd)
                try:
                    os.setpgid(pid, pid)
                except OSError:  # the child did it first (or has already exited)
                    pass
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (conn, pid)
                conns[conn] = pid
                conn.sendall(b"P%d\n" % pid)
            elif isinstance(r, socket.socket):  # a forwarded signal, or the shim is gone
                pid = conns[r]
                data = r.recv(64)
                if not data:
                    _kill_group(pid, signal.SIGKILL)
                    del conns[r]
                    continue
                for line in data.split(b"\n"):
                    if line.startswith(b"S"):
                        _kill_group(pid, int(line[1:]))
            else:  # a child exited
                conn, pid = children.pop(r)
                os.close(r)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                if conn in conns:
                    try:
                        conn.sendall(b"X%d\n" % code)
                    except OSError:
                        pass
                    del conns[conn]
                conn.close()


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


def _read_request(conn: socket.socket) -> dict[str, object] | None:
    msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    if len(fds) != 3 or len(msg) < 4:
        for fd in fds:
            os.close(fd)
        return None
    (size,) = struct.unpack("!I", msg[:4])
    body = msg[4:]
    while len(body) < size:
        more = conn.recv(size - len(body))
        if not more:
            return None
        body += more
    request: dict[str, object] = json.loads(body)
    request["fds"] = fds
    return request


def _run(request: dict[str, object]) -> None:
    """In the forked child: become `python -m bastion.cli ARGS` in the caller's folder, environment and fds."""
    import runpy

    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fds: list[int] = request["fds"]  # type: ignore[assignment]
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    env: dict[str, str] = request["env"]  # type: ignore[assignment]
    os.environ.clear()
    os.environ.update(env)
    cwd: str = request["cwd"]  # type: ignore[assignment]
    os.chdir(cwd)
    sys.path[0] = cwd  # what `python -m` puts first
    common = sys.modules.get("bastion.cli._common")
    if common is not None:  # the CLI's consoles read the environment (COLUMNS, NO_COLOR, TERM) when made, at
        # import: make them again for this command's environment, in place (modules hold them by reference)
        for name, kwargs in (("console", {}), ("err_console", {"stderr": True})):
            getattr(common, name).__dict__.update(common.make_console(**kwargs).__dict__)
    if "numpy" in sys.modules:  # a fresh process has fresh global random state (random reseeds itself on fork)
        sys.modules["numpy"].random.seed()
    args: list[str] = request["args"]  # type: ignore[assignment]
    sys.argv = ["-m", *args]
    code = 0
    try:
        runpy.run_module("bastion.cli", run_name="__main__", alter_sys=True)
    except SystemExit as e:  # what the interpreter makes of it
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            sys.stderr.write(f"{e.code}\n")
            code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    # The end of a fresh interpreter, without its teardown of every module: that would write to each page of
    # the server's (shared, copy-on-write) heap and copy all of it, seconds per command.
    import atexit
    import threading

    threading._shutdown()  # type: ignore[attr-defined]  # non-daemon threads are waited for, as at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


if __name__ == "__main__":
    if sys.argv[1] == "run":
        _shim(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "serve":
        sys.path[0] = os.getcwd()  # not this folder: the tests' modules are not the command's
        req = _serve(sys.argv[2])
        if req is not None:
            _run(req)
    else:
        sys.exit(f"usage: {sys.argv[0]} serve SOCKET | run SOCKET ARGS...")
