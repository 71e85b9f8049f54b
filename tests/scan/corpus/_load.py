"""Load corpus samples with their normal loaders and report which ones create the canary.

Run in a throwaway subprocess:
``python _load.py MANIFEST CANARY [--grace S] [--preload M,M] [NAME ...]``; prints one JSON object
``{name: {"created": bool, "error": str | None}}``. Each sample loads in a forked child with a
fresh temporary working directory, so one payload cannot affect the next.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import importlib
import io
import json
import lzma
import marshal
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import time
import traceback
import types
import warnings
import zipfile
from pathlib import Path
from typing import Any

CHILD_TIMEOUT = 30.0
CANARY_GRACE = 3.0  # payloads that spawn a process (Popen, spawnv) finish after the load returns


def _pickle_stream(data: bytes) -> Any:
    bio = io.BytesIO(data)
    out = []
    while bio.tell() < len(data):
        out.append(pickle.load(bio))
    return out


def _as_file(data: bytes, suffix: str = "") -> str:
    fd, name = tempfile.mkstemp(suffix=suffix, dir=".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return name


def _torch(data: bytes) -> Any:
    import torch

    # a real file: torch's legacy tar reader needs fileno()
    return torch.load(_as_file(data, ".pt"), weights_only=False)


def _keras_lambdas(config: Any) -> list[str]:
    found: list[str] = []
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            fn = config.get("config", {}).get("function")
            if isinstance(fn, dict) and fn.get("class_name") == "__lambda__":
                found.append(fn["config"]["code"])
            elif isinstance(fn, list):
                found.append(fn[0])
        for v in config.values():
            found.extend(_keras_lambdas(v))
    elif isinstance(config, list):
        for v in config:
            found.extend(_keras_lambdas(v))
    return found


def _keras_lambda(data: bytes) -> Any:
    """What keras' ``func_load`` does with a Lambda under ``safe_mode=False`` (Keras itself is not
    installed here): base64-decode, ``marshal.loads``, build the function, and call it once as the
    model would when it is built or run."""
    if data[:4] == b"PK\x03\x04":
        config = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("config.json"))
    else:
        import h5py

        with h5py.File(io.BytesIO(data), "r") as f:
            raw = f.attrs["model_config"]
            config = json.loads(raw if isinstance(raw, str) else raw.decode())
    results = []
    for code_b64 in _keras_lambdas(config):
        code = marshal.loads(base64.b64decode(code_b64))
        fn = types.FunctionType(code, globals())
        results.append(fn(0))
    return results


def _gguf_metadata(data: bytes) -> dict[str, Any]:
    """Read a GGUF v2/v3 header's metadata (strings, scalars, arrays) the way llama.cpp's reader does."""
    import struct

    pos = 4
    _version, _n_tensors, n_kv = struct.unpack_from("<IQQ", data, pos)
    pos += 20
    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        pos += n
        return data[pos - n : pos].decode()

    def value(vtype: int) -> Any:
        nonlocal pos
        if vtype == 8:
            return string()
        if vtype == 9:
            item, count = struct.unpack_from("<IQ", data, pos)
            pos += 12
            return [value(item) for _ in range(count)]
        fmt = "<" + sizes[vtype]
        (v,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v

    meta = {}
    for _ in range(n_kv):
        key = string()
        (vtype,) = struct.unpack_from("<I", data, pos)
        pos += 4
        meta[key] = value(vtype)
    return meta


def _gguf(data: bytes) -> Any:
    """Read the metadata, then do what llama-cpp-python before 0.2.72 did with a GGUF's chat template
    (CVE-2024-34359): render it in a plain, unsandboxed jinja2 Environment for the first chat message."""
    import jinja2

    meta = _gguf_metadata(data)
    template = meta.get("tokenizer.chat_template")
    if template is None:
        return meta
    env = jinja2.Environment(loader=jinja2.BaseLoader())  # unsandboxed: the vulnerable loader, on purpose
    return env.from_string(template).render(messages=[{"role": "user", "content": "hi"}],
                                            add_generation_prompt=True)


def _member(data: bytes, kind: str, name: str) -> bytes:
    if kind == "zip":
        return zipfile.ZipFile(io.BytesIO(data)).read(name)  # last duplicate wins, as in zipfile
    if kind == "tar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            f = tf.extractfile(name)
            assert f is not None
            return f.read()
    if kind == "7z":
        import py7zr

        with tempfile.TemporaryDirectory(dir=".") as tmp, py7zr.SevenZipFile(io.BytesIO(data)) as z:
            z.extractall(path=tmp)
            return (Path(tmp) / name).read_bytes()
    raise ValueError(kind)


def load(data: bytes, spec: str) -> Any:
    """Open ``data`` as ``spec`` says: ``pickle``, ``torch``, ``zip:member>pickle``, ``gzip>pickle``,
    ``zip_extract:member>pickle`` (extract everything, then open the file)..."""
    head, _, rest = spec.partition(">")
    kind, _, arg = head.partition(":")
    if kind in ("zip", "tar", "7z"):
        return load(_member(data, kind, arg), rest)
    if kind in ("gzip", "bz2", "xz"):
        return load({"gzip": gzip.decompress, "bz2": bz2.decompress, "xz": lzma.decompress}[kind](data), rest)
    if kind == "pickle":
        return pickle.loads(data)
    if kind == "pickle_stream":
        return _pickle_stream(data)
    if kind == "joblib":
        import joblib

        return joblib.load(_as_file(data))
    if kind == "torch":
        return _torch(data)
    if kind == "numpy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=True)
    if kind == "npz":
        import numpy as np

        with np.load(io.BytesIO(data), allow_pickle=True) as z:
            return {k: z[k] for k in z.files}
    if kind == "tar_extract" and not arg:
        # a naive "untar the model folder" step; 'fully_trusted' is what extractall did before
        # Python 3.14 made the safer 'data' filter the default
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            tf.extractall(".", filter="fully_trusted")
        return None
    if kind in ("zip_extract", "tar_extract"):
        # "extract the model folder, then load a file from it", with the standard library's careful
        # extractors (zipfile drops '.', '..' and empty segments; tarfile's 'data' filter refuses
        # escapes and links): a later member whose name normalizes to the same path overwrites the file
        with tempfile.TemporaryDirectory(dir=".") as tmp:
            if kind == "zip_extract":
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    zf.extractall(tmp)
            else:
                with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                    tf.extractall(tmp, filter="data")
            return load((Path(tmp) / arg).read_bytes(), rest)
    if kind == "gguf":
        return _gguf(data)
    if kind == "keras_lambda":
        return _keras_lambda(data)
    raise ValueError(f"unknown loader {spec!r}")


def _run_child(path: Path, spec: str, err_path: str, workdir: str) -> None:
    os.chdir(workdir)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    err = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load(path.read_bytes(), spec)
    except BaseException as e:  # the defect after the payload is expected to raise
        err = f"{type(e).__name__}: {e}"[:300]
    with open(err_path, "w") as f:
        f.write(err)
    os._exit(0)


def run(
    manifest: Path,
    canary: Path,
    names: set[str] | None = None,
    *,
    grace: float = CANARY_GRACE,
    preload: tuple[str, ...] = (),
) -> dict[str, dict[str, Any]]:
    samples = json.loads(manifest.read_text())["samples"]
    # import the heavy loaders once, before forking, so each child starts fast
    import joblib  # noqa: F401
    import numpy  # noqa: F401
    import torch  # noqa: F401

    for module in preload:  # e.g. sklearn submodules: seconds to import, once here instead of per child
        try:
            importlib.import_module(module)
        except ImportError:  # optional libraries (xgboost, lightgbm): their samples are not built then
            pass

    results: dict[str, dict[str, Any]] = {}
    for s in samples:
        if not s["loader"] or (names is not None and s["name"] not in names):
            continue
        canary.unlink(missing_ok=True)
        err_path = tempfile.mktemp(prefix="bastion-load-err-")
        # the parent makes (and below removes) the child's scratch folder: a child that is killed or
        # exits with os._exit cannot clean up after itself
        workdir = tempfile.mkdtemp(prefix="bastion-load-")
        pid = os.fork()
        if pid == 0:
            try:
                _run_child(Path(s["path"]), s["loader"], err_path, workdir)
            finally:
                os._exit(1)
        deadline = time.monotonic() + CHILD_TIMEOUT
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.005)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        until = time.monotonic() + grace
        while not canary.exists() and time.monotonic() < until:
            time.sleep(0.01)
        error = Path(err_path).read_text() if os.path.exists(err_path) else "child timed out or crashed"
        Path(err_path).unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
        results[s["name"]] = {"created": canary.exists(), "error": error or None}
        canary.unlink(missing_ok=True)
    return results


if __name__ == "__main__":
    try:
        rest = sys.argv[3:]
        grace = CANARY_GRACE
        preload: tuple[str, ...] = ()
        while rest[:1] in (["--grace"], ["--preload"]):
            if rest[0] == "--grace":
                grace = float(rest[1])
            else:
                preload = tuple(rest[1].split(","))
            rest = rest[2:]
        out = run(Path(sys.argv[1]), Path(sys.argv[2]), set(rest) or None, grace=grace, preload=preload)
    except Exception:
        traceback.print_exc()
        sys.exit(3)
    print(json.dumps(out))
