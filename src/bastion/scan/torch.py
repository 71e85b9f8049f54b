"""PyTorch checkpoints: the zip layout (pickles analysed, tensor blobs never read) and the legacy formats.

Persistent ids are expected inside PyTorch pickles (storages); everywhere else they are findings.
"""

from __future__ import annotations

import dataclasses

from bastion.scan.interface import Severity
from bastion.scan.pickle import analyze_pickle_stream

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO

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


def scan_legacy_tar_data(stream: IO[bytes], ctx: ScanContext) -> None:
    """The ``storages``/``tensors`` members of the oldest torch tar format: a count pickle, then data."""
    analyze_pickle_stream(stream, ctx, joblib_arrays=False, sequence=1)
