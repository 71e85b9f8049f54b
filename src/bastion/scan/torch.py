"""PyTorch checkpoints: the zip layout (pickles analysed, tensor blobs never read) and the legacy formats.

Persistent ids are expected inside PyTorch pickles (storages); everywhere else they are findings.
"""

from __future__ import annotations

import dataclasses

from bastion.scan.interface import Severity
from bastion.scan.pickle import analyze_pickle_stream

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO, Any

    from bastion.scan.interface import ScanContext

__all__ = [
    "is_legacy_torch",
    "is_tensor_blob",
    "scan_legacy_pickle",
    "scan_legacy_tar_data",
    "zip_findings",
    "zip_layout",
]

_LEGACY_MAGIC = b"\x8a\x0a" + bytes.fromhex("6cfc9c46f9206aa85019")


def zip_layout(names: list[str]) -> str | None:
    """The root folder of a PyTorch zip checkpoint, or None when ``names`` is not one."""
    roots = set()
    for name in names:
        parts = name.split("/")
        if len(parts) >= 2 and parts[-1] in ("version", "data.pkl", "constants.pkl"):
            roots.add("/".join(parts[:-1]).removesuffix("/.data"))
    for root in sorted(roots):
        has_pickle = any(n.startswith(root + "/") and n.endswith(".pkl") for n in names)
        has_version = f"{root}/version" in names or f"{root}/.data/version" in names
        if has_pickle and has_version:
            return root
    return None


def is_tensor_blob(name: str, root: str) -> bool:
    """True for ``<root>/data/<key>``: raw storage bytes that torch never unpickles."""
    prefix = f"{root}/data/"
    if not name.startswith(prefix):
        return False
    key = name[len(prefix):]
    return bool(key) and "/" not in key and not key.endswith(".pkl")


def zip_findings(names: list[str], root: str, ctx: ScanContext) -> None:
    """Layout-level findings for a PyTorch zip (TorchScript code, extra top-level folders)."""
    code = [n for n in names if n.startswith(f"{root}/code/")]
    if code:
        ctx.add(
            "torch.torchscript",
            Severity.INFO,
            f"{root}/code/ ({len(code)} files)",
            "The checkpoint is a TorchScript archive: torch.jit.load compiles and runs the TorchScript code "
            "it carries (not Python, but still program logic from the file).",
            "Load TorchScript archives only from producers you trust, or export weights with safetensors.",
        )
    strays = sorted({n.split("/")[0] for n in names} - {root.split("/")[0]})
    if strays:
        ctx.add(
            "torch.extra-members",
            Severity.MEDIUM,
            ", ".join(strays[:5]),
            "The PyTorch archive has members outside its root folder; torch ignores them, other loaders "
            "may not.",
            "Re-save the checkpoint with torch.save from a trusted environment.",
        )


def is_legacy_torch(head: bytes) -> bool:
    """True for the pre-1.6 (non-zip) torch.save format, which starts with a magic-number pickle."""
    return len(head) >= 14 and head[0] == 0x80 and head[2:14] == _LEGACY_MAGIC


def scan_legacy_pickle(stream: IO[bytes], ctx: ScanContext) -> None:
    """Legacy torch.save: magic, protocol, sys_info and the main pickle, then the storage-key list."""
    ctx.label = "pytorch-legacy"
    legacy = dataclasses.replace(ctx, flags=ctx.flags | {"torch"})
    analyze_pickle_stream(stream, legacy, joblib_arrays=False, sequence=5)


# Bytes per element of each legacy storage type (torch._utils._element_size of its dtype).
_ELEMENT_SIZES = {
    "torch.DoubleStorage": 8, "torch.FloatStorage": 4, "torch.HalfStorage": 2, "torch.BFloat16Storage": 2,
    "torch.LongStorage": 8, "torch.IntStorage": 4, "torch.ShortStorage": 2, "torch.CharStorage": 1,
    "torch.ByteStorage": 1, "torch.BoolStorage": 1, "torch.ComplexFloatStorage": 8, "torch.ComplexDoubleStorage": 16,
    "torch.QInt8Storage": 1, "torch.QUInt8Storage": 1, "torch.QInt32Storage": 4, "torch.QUInt4x2Storage": 1,
    "torch.QUInt2x4Storage": 1,
}
_REMEDIATE_LAYOUT = "Re-save the checkpoint with a current torch.save (zip format) from a trusted environment."


def _layout_finding(ctx: ScanContext, member: str, what: str, offset: int) -> None:
    ctx.add("torch.legacy-layout", Severity.HIGH, f"{member} at byte {offset}",
            f"The legacy torch tar member {member!r} does not follow the layout torch.load reads ({what}); the "
            "pickles after this point cannot be located, so they were not analysed.", _REMEDIATE_LAYOUT,
            offset=offset)


def _skip(stream: IO[bytes], n: int) -> int:
    """Read and drop ``n`` bytes; returns how many were there."""
    done = 0
    while done < n:
        chunk = stream.read(min(n - done, 1 << 20))
        if not chunk:
            break
        done += len(chunk)
    return done


def scan_legacy_tar_data(stream: IO[bytes], ctx: ScanContext, member: str = "storages") -> None:
    """The ``storages``/``tensors`` members of the oldest torch tar format, read as ``torch.load`` reads them.

    ``storages``: a count pickle, then per storage an ``(key, location, storage_type)`` pickle followed by an
    int64 element count and the raw elements, then a storage-views pickle. ``tensors``: a count pickle, then
    per tensor a ``(key, storage_id, type)`` pickle followed by a binary header (ndim, sizes, strides,
    offset). Every pickle is analysed; raw bytes are skipped by the lengths torch would use.
    """
    import struct

    from bastion.scan.pickle import _full

    pos = 0

    def one() -> Any:
        nonlocal pos
        result = analyze_pickle_stream(stream, ctx, base=pos, joblib_arrays=False, sequence=1)
        if result is None or not result.complete:
            return _INCOMPLETE
        pos = result.end
        return result.first_value

    count = one()
    if count is _INCOMPLETE:
        return
    if type(count) is not int or count < 0:
        _layout_finding(ctx, member, f"its first pickle is not a count but {type(count).__name__}", pos)
        return
    for _ in range(count):
        ctx.check_time()
        args = one()
        if args is _INCOMPLETE:
            return
        if not (isinstance(args, tuple) and len(args) == 3):
            _layout_finding(ctx, member, "a record pickle is not a 3-tuple", pos)
            return
        if member == "storages":
            size = _ELEMENT_SIZES.get(_full(args[2]) or "")
            head = stream.read(8)
            if size is None or len(head) != 8:
                _layout_finding(ctx, member, "a storage of unknown type or without its length", pos)
                return
            (numel,) = struct.unpack("<q", head)
            want = max(numel, 0) * size
            got = _skip(stream, want)
            pos += 8 + got
            if numel < 0 or got != want:
                _layout_finding(ctx, member, f"a storage states {numel} elements that are not there", pos)
                return
        else:
            head = stream.read(8)
            (ndim,) = struct.unpack("<i", head[:4]) if len(head) == 8 else (-1,)
            want = 16 * ndim + 8 if 0 <= ndim <= 64 else -1
            got = _skip(stream, want) if want >= 0 else 0
            pos += len(head) + got
            if want < 0 or got != want:
                _layout_finding(ctx, member, "a tensor header is truncated or states an impossible rank", pos)
                return
    if member == "storages" and one() is _INCOMPLETE:  # the storage views
        return
    rest = _skip(stream, 1 << 62)
    if rest:
        ctx.add("torch.legacy-trailing-data", Severity.MEDIUM, f"{member}: {rest} bytes",
                f"{rest} bytes follow the last record torch.load reads from {member!r}; torch ignores them, a "
                "different reader may not.", _REMEDIATE_LAYOUT, offset=pos)


_INCOMPLETE = object()
