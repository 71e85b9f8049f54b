"""Parse an untrusted XGBoost, LightGBM or ONNX artifact in a child process before the registering process does.

Their C++ parsers crash (segmentation fault, abort) on some malformed files: a mutated UBJSON booster or LightGBM
text model kills the process that loads it. At registration that must be a refusal, not the death of the CLI,
and never a version that later kills the server. One child per process, started on first use and reused;
a child that crashed is replaced on the next call.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import struct
import subprocess
import sys
import threading

from bastion.errors import DataError, UnsafeArtifactError

__all__ = ["ISOLATED", "check_in_child"]

log = logging.getLogger("bastion.flavors")

#: Flavors whose files are parsed by native code.
ISOLATED = frozenset({"xgboost", "lightgbm", "onnx"})
_TIMEOUT_S = 300.0


# The child: a clean interpreter (-I: no current folder, PYTHONPATH or user site on its path, so no module planted
# next to the artifact is imported) that imports nothing of Bastion or of the caller's script, reads
# ``kind\n`` + 8-byte length + bytes from stdin, parses them as the framework does (for LightGBM plus a
# prediction on zeros, after the parent's structural checks already passed), and
# answers ``ok\n``. Errors the framework raises are not its business (the caller's own load reports them).
_CHILD = r"""
import struct, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    kind = inp.readline().strip().decode()
    if not kind:
        break
    (n,) = struct.unpack("!Q", inp.read(8))
    data = inp.read(n)
    try:
        if kind == "xgboost":
            import xgboost
            b = xgboost.Booster()
            b.load_model(bytearray(data))  # (its trees are checked in the parent before anything predicts)
        elif kind == "lightgbm":
            import lightgbm
            b = lightgbm.Booster(model_str=data.decode("utf-8"))
            b.predict(np.zeros((5, b.num_feature())))
        elif kind == "onnx":
            import onnxruntime
            so = onnxruntime.SessionOptions()
            so.log_severity_level = 4
            onnxruntime.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])
    except Exception:
        pass
    out.write(b"ok\n")
    out.flush()
"""


class _Checker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", _CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, kind: str, data: bytes, timeout: float) -> str | None:
        """None when the child survived parsing ``data``; else how it died."""
        answer: list[bytes] = []

        def talk() -> None:
            try:
                self.stdin.write(kind.encode() + b"\n" + struct.pack("!Q", len(data)))
                self.stdin.write(data)
                self.stdin.flush()
                answer.append(self.stdout.readline())
            except OSError:  # the child died while we wrote
                answer.append(b"")

        t = threading.Thread(target=talk, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():  # still parsing after the timeout
            self.proc.kill()
            self.proc.wait(10)
            t.join(10)
            return f"did not finish within {timeout:g} s"
        if answer and answer[0] == b"ok\n":
            return None
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "stopped answering"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.stdout.close()


_lock = threading.Lock()
_checker: _Checker | None = None


def check_in_child(flavor: str, data: bytes, *, what: str, timeout: float = _TIMEOUT_S) -> None:
    """Raise :class:`UnsafeArtifactError` when parsing ``data`` as ``flavor`` crashes a child process (or
    :class:`DataError` when it hangs); return when the framework's parser survives it (a file it merely rejects
    is left to the caller's own load, which says why)."""
    global _checker
    if flavor not in ISOLATED:
        return
    with _lock:
        if _checker is None or not _checker.alive():
            _checker = _Checker()
            atexit.register(_checker.close)
        died = _checker.run(flavor, data, timeout)
        if died is None:
            return
        _checker.close()
        _checker = None
    log.warning("%s: the %s parser crashed in the check process (%s)", what, flavor, died)
    if died.startswith("did not finish"):
        raise DataError(f"{what}: parsing it as {flavor} {died}; refused.")
    raise UnsafeArtifactError(
        f"{what}: the {flavor} parser crashed on it in an isolated check process ({died}). A malformed or hostile "
        "file is refused, never loaded into this process or a server. Save the model again with its framework.")
