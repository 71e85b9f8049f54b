"""Legacy torch checkpoints for the corpus: a payload in every pickle ``torch.load`` reads, and benign files.

The legacy (non-zip) ``torch.save`` stream is five pickles (magic number, protocol, sys_info, the object,
the storage keys) then raw storages; the oldest tar format has ``storages`` and ``tensors`` members that
interleave record pickles with raw bytes, and a ``pickle`` member (``sys_info`` is optional: torch never
reads it). Benign samples cover every tensor kind torch's rebuild helpers write, zip and legacy.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import tarfile
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class _Reduce:
    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


class _Pers(pickle.Pickler):
    """Writes the marker object as persistent id "2" (a tensor key), as the tar format's main pickle does."""

    marker = object()

    def persistent_id(self, obj: Any) -> str | None:
        return "2" if obj is self.marker else None


def tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _split_pickles(data: bytes, n: int) -> tuple[list[bytes], bytes]:
    bio, parts = io.BytesIO(data), []
    for _ in range(n):
        start = bio.tell()
        for _op in pickletools.genops(bio):
            pass
        parts.append(data[start:bio.tell()])
    return parts, data[bio.tell():]


def _dumps(v: Any) -> bytes:
    return pickle.dumps(v, protocol=2)


def samples(canary: str) -> tuple[dict[str, tuple[bytes, str, str]], dict[str, tuple[bytes, str, str]]]:
    """``(malicious, benign)``: file name -> (bytes, technique, format)."""
    import torch

    system = _dumps(_Reduce(os.system, (f"touch {canary}",)))
    handler = _dumps(_Reduce(__import__("logging").FileHandler, (canary,)))  # creates its file when built
    bad: dict[str, tuple[bytes, str, str]] = {}
    good: dict[str, tuple[bytes, str, str]] = {}

    buf = io.BytesIO()
    torch.save(OrderedDict(w=torch.arange(4, dtype=torch.float32)), buf, _use_new_zipfile_serialization=False)
    parts, raw = _split_pickles(buf.getvalue(), 5)
    for index, where in enumerate(("magic-number", "protocol", "main", "storage-keys")):
        at = {"magic-number": 0, "protocol": 1, "main": 3, "storage-keys": 4}[where]
        spliced = list(parts)
        spliced[at] = handler if where == "storage-keys" else system
        bad[f"torch_legacy_{where}.pt"] = (b"".join(spliced) + raw, f"legacy torch pickle stream, payload in the "
                                           f"{where} pickle (pickle {at + 1} of 5)", "torch-legacy")
        del index

    def storages(count: bytes | None = None, second: bytes | None = None, views: bytes | None = None) -> bytes:
        def raw_floats(n: int) -> bytes:
            return struct.pack("<q", n) + struct.pack(f"<{n}f", *range(n))

        return ((count or _dumps(2)) + _dumps((0, "cpu", torch.FloatStorage)) + raw_floats(3)
                + (second or _dumps((1, "cpu", torch.FloatStorage))) + raw_floats(2) + (views or _dumps([])))

    def tensors(second: bytes | None = None) -> bytes:
        def header(n: int) -> bytes:
            return struct.pack("<i", 1) + b"\0" * 4 + struct.pack("<qqq", n, 1, 0)

        return (_dumps(2) + _dumps((2, 0, torch.FloatTensor)) + header(3)
                + (second or _dumps((3, 1, torch.FloatTensor))) + header(2))

    def main(extra: Any = None) -> bytes:
        out = io.BytesIO()
        _Pers(out, protocol=2).dump({"w": _Pers.marker, **({"x": extra} if extra is not None else {})})
        return out.getvalue()

    sys_info = ("sys_info", _dumps({"protocol_version": 1001, "little_endian": True,
                                    "type_sizes": {"short": 2, "int": 4, "long": 4}}))

    def old(st: bytes | None = None, te: bytes | None = None, pk: bytes | None = None, info: bool = True) -> bytes:
        return tar([*([sys_info] if info else []), ("storages", st or storages()), ("tensors", te or tensors()),
                    ("pickle", pk or main())])

    payload = _Reduce(os.system, (f"touch {canary}",))
    for name, data, where in (
        ("storage_record", old(st=storages(second=system)), "the second storage record, after raw storage bytes"),
        ("storage_views", old(st=storages(views=handler)), "the storage-views pickle after the last storage"),
        ("tensor_record", old(te=tensors(second=system)), "the second tensor record of 'tensors', after a header"),
        ("pickle_member", old(pk=main(payload)), "the 'pickle' member (the object, persistent ids allowed)"),
        ("no_sys_info", old(pk=main(payload), info=False), "a tar without sys_info (torch never reads it)"),
    ):
        bad[f"torch_tar_{name}.tar"] = (data, f"legacy torch tar checkpoint, payload in {where}", "torch-tar")
    good["torch_tar_benign.tar"] = (old(), "legacy torch tar checkpoint (storages, tensors, pickle)", "torch-tar")
    good["torch_tar_benign_no_sys_info.tar"] = (old(info=False), "legacy torch tar checkpoint without sys_info",
                                         "torch-tar")

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.BatchNorm1d(3))
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(5, 4)).sum().backward()
    opt.step()
    param = torch.nn.Parameter(torch.randn(2))
    param.note = "kept"  # saved with _rebuild_parameter_with_state
    objects: dict[str, Any] = {
        "module": net, "optimizer": opt.state_dict(),
        "sparse_coo": torch.randn(3, 3).to_sparse(), "sparse_csr": torch.randn(3, 3).to_sparse_csr(),
        "qtensor": torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.quint8),
        "qchannel": torch.quantize_per_channel(torch.randn(2, 3), torch.tensor([0.1, 0.2]), torch.tensor([0, 0]), 0,
                                               torch.qint8),
        "meta": torch.empty(3, 4, device="meta"), "float8": torch.randn(3).to(torch.float8_e4m3fn),
        "parameter_state": param, "buffer": torch.nn.Buffer(torch.randn(2)),
        "nested": torch.nested.nested_tensor([torch.randn(2), torch.randn(3)]),
    }
    for name, obj in objects.items():
        # torch's legacy writer cannot save nested tensors and float8 storages loadably: zip only
        for fmt in ("zip",) if name in ("nested", "float8") else ("zip", "legacy"):
            buf = io.BytesIO()
            torch.save(obj, buf, _use_new_zipfile_serialization=fmt == "zip")
            kind = "torch" if fmt == "zip" else "torch-legacy"
            good[f"torch_{fmt}_{name}.pt"] = (buf.getvalue(), f"torch {name.replace('_', ' ')} ({fmt} format)", kind)
    return bad, good
