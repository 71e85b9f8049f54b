"""Parallel, streaming SHA-256 over every file of a model (a directory or a single file).

The names and the order follow the OpenSSF Model Signing "files" serialization so digests interoperate.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from bastion.errors import DataError

__all__ = [
    "DEFAULT_IGNORE_PATHS",
    "SINGLE_FILE_NAME",
    "hash_file",
    "hash_model",
    "list_model_files",
    "root_digest",
    "sort_names",
]

# Upstream model_signing leaves git metadata out of a model by default; we do the same so a model
# signed by either tool verifies with the other.
DEFAULT_IGNORE_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")

# A model that is a single file has one resource, named "." (the path relative to itself), as upstream.
SINGLE_FILE_NAME = "."

# 4 MiB reads: large enough that syscall overhead vanishes and hashlib releases the GIL for the whole
# buffer, small enough to stay in L2/L3 for the hash pass.
_BUFFER = 4 * 1024 * 1024


def hash_file(path: str | os.PathLike[str], *, buffer_size: int = _BUFFER) -> str:
    """SHA-256 of one file, read in streaming chunks, as lowercase hex."""
    h = hashlib.sha256()
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def _ignored(rel: PurePosixPath, ignore: frozenset[str]) -> bool:
    parts = rel.parts
    return any("/".join(parts[: i + 1]) in ignore for i in range(len(parts)))


def list_model_files(
    model_path: str | os.PathLike[str], *, ignore_paths: Iterable[str] = DEFAULT_IGNORE_PATHS
) -> dict[str, Path]:
    """Map each resource name (POSIX path relative to the model) to its file on disk.

    Symbolic links and special files are refused (fail closed): a link could point outside the model.
    """
    root = Path(model_path)
    try:
        st = root.lstat()
    except FileNotFoundError as e:
        raise DataError(f"Model path {root} does not exist. Pass a model directory or file.") from e
    if stat.S_ISLNK(st.st_mode):
        raise DataError(f"Model path {root} is a symbolic link; pass the real path instead.")
    if stat.S_ISREG(st.st_mode):
        return {SINGLE_FILE_NAME: root}
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(f"Model path {root} is neither a regular file nor a directory.")
    ignore = frozenset(str(PurePosixPath(p)) for p in ignore_paths)
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = PurePosixPath(base.relative_to(root).as_posix())
        keep = []
        for d in dirnames:
            full = base / d
            rel = rel_dir / d
            if _ignored(rel, ignore):
                continue
            if full.is_symlink():
                raise DataError(f"Model contains a symbolic link '{rel}'; signing refuses links.")
            keep.append(d)
        dirnames[:] = keep
        for fn in filenames:
            full = base / fn
            rel = rel_dir / fn
            if _ignored(rel, ignore):
                continue
            mode = full.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise DataError(f"Model contains a symbolic link '{rel}'; signing refuses links.")
            if not stat.S_ISREG(mode):
                raise DataError(f"Model contains '{rel}', which is not a regular file.")
            files[str(rel)] = full
    return files


def sort_names(names: Iterable[str]) -> list[str]:
    """Canonical order of resource names: by path components, as upstream sorts its manifest."""
    return sorted(names, key=lambda n: PurePosixPath(n).parts)


def root_digest(digests: Mapping[str, str]) -> str:
    """SHA-256 over the raw per-file digests in canonical order: the statement's subject digest."""
    h = hashlib.sha256()
    for name in sort_names(digests):
        h.update(bytes.fromhex(digests[name]))
    return h.hexdigest()


def hash_model(
    model_path: str | os.PathLike[str],
    *,
    ignore_paths: Iterable[str] = DEFAULT_IGNORE_PATHS,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, str]:
    """SHA-256 of every file of a model, hashed in parallel threads.

    Parameters
    ----------
    model_path
        A model directory, or a single model file.
    ignore_paths
        Relative paths (files or folders) left out of the model.
    workers
        Threads; default one per CPU. hashlib releases the GIL, so threads hash truly in parallel.
    progress
        Called with ``(bytes_done, bytes_total)`` as files finish.

    Returns
    -------
    dict
        Resource name -> lowercase hex digest, in canonical order.
    """
    files = list_model_files(model_path, ignore_paths=ignore_paths)
    sizes = {name: p.stat().st_size for name, p in files.items()}
    total = sum(sizes.values())
    # Largest files first so one big file does not start last and leave the other threads idle.
    order = sorted(files, key=lambda n: -sizes[n])
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(order) or 1))
    result: dict[str, str] = {}
    done = 0
    if progress is not None:
        progress(0, total)
    if n_workers == 1:
        for name in order:
            result[name] = hash_file(files[name])
            done += sizes[name]
            if progress is not None:
                progress(done, total)
    else:
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="bastion-hash") as pool:
            futures = {name: pool.submit(hash_file, files[name]) for name in order}
            for name in order:
                result[name] = futures[name].result()
                done += sizes[name]
                if progress is not None:
                    progress(done, total)
    return {name: result[name] for name in sort_names(result)}
