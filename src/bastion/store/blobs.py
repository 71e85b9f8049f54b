"""Content-addressed blob store: files and directories by SHA-256, written atomically, verified on read.

A directory is stored as a manifest blob listing its files; each file is a blob of its own.
Local folders are the default; any fsspec URL (for example ``s3://bucket/prefix``) works too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from bastion.errors import BastionError, ConfigError, DataError, IntegrityError, StoreError

__all__ = [
    "CHUNK",
    "BlobStore",
    "FsspecBlobStore",
    "LocalBlobStore",
    "open_blob_store",
    "s3_fs_kwargs",
    "sha256_file",
    "validate_member_path",
]

CHUNK = 8 * 1024 * 1024
_SHARE_HINT = (" Every project folder sharing a database must use the same artifact store"
               " (artifacts_url and storage_options).")
MANIFEST_KIND = "bastion.dir-manifest"


def _hex(digest: str) -> str:
    if not digest.startswith("sha256:") or len(digest) != 71:
        raise StoreError(f"Not a Bastion digest: {digest!r} (expected 'sha256:' + 64 hex characters).")
    h = digest[7:]
    if any(c not in "0123456789abcdef" for c in h):
        raise StoreError(f"Not a Bastion digest: {digest!r} (expected lowercase hex).")
    return h


def sha256_file(path: str | Path) -> str:
    """``sha256:<hex>`` of a file, streamed."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return "sha256:" + h.hexdigest()


def validate_member_path(rel: str) -> PurePosixPath:
    """Check a path from a manifest: relative, no ``..``, no empty or odd parts."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise IntegrityError(f"Manifest path {rel!r} is not allowed.")
    p = PurePosixPath(rel)
    if p.is_absolute() or rel.startswith("/") or any(part in {"..", ".", ""} for part in rel.split("/")):
        raise IntegrityError(f"Manifest path {rel!r} leaves the artifact folder or is not normalized.")
    return p


class BlobStore:
    """Interface of a blob store; see :class:`LocalBlobStore`."""

    def put_file(self, path: str | Path, progress: Callable[[int, int], None] | None = None) -> str:
        raise NotImplementedError

    def put_bytes(self, data: bytes) -> str:
        raise NotImplementedError

    def exists(self, digest: str) -> bool:
        raise NotImplementedError

    def get_bytes(self, digest: str, *, what: str = "") -> bytes:
        raise NotImplementedError

    def materialize(self, digest: str, dest: str | Path, *, what: str = "") -> Path:
        raise NotImplementedError

    def delete(self, digest: str) -> None:
        raise NotImplementedError

    def iter_digests(self) -> Iterator[str]:
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`StoreError` when the store cannot be reached."""

    def describe(self) -> str:
        """Where the store is, for messages (never credentials)."""
        return type(self).__name__

    # -- shared logic ------------------------------------------------------------------------
    def put(self, path: str | Path, progress: Callable[[int, int], None] | None = None) -> tuple[str, str]:
        """Store a file or a directory; returns ``(digest, kind)`` with kind ``file`` or ``dir``."""
        p = Path(path)
        if p.is_symlink():
            raise DataError(f"{p} is a symbolic link; give the real file or folder.")
        if p.is_dir():
            return self.put_dir(p, progress=progress), "dir"
        if p.is_file():
            return self.put_file(p, progress=progress), "file"
        raise DataError(f"{p} does not exist or is not a regular file or folder.")

    def put_dir(self, root: Path, progress: Callable[[int, int], None] | None = None) -> str:
        """Store every file under ``root`` and a manifest of them; symlinks are refused."""
        root = root.resolve()
        files: list[dict[str, Any]] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in [*dirnames, *filenames]:
                full = Path(dirpath) / name
                if full.is_symlink():
                    raise DataError(f"{full} is a symbolic link; Bastion stores only real files.")
            for name in sorted(filenames):
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                validate_member_path(rel)
                files.append({"path": rel, "digest": self.put_file(full), "size": full.stat().st_size})
        files.sort(key=lambda f: f["path"])
        manifest = {"schema_version": 1, "kind": MANIFEST_KIND, "files": files}
        return self.put_bytes(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())

    def read_manifest(self, digest: str, *, what: str = "") -> list[dict[str, Any]] | None:
        """The file list if ``digest`` is a directory manifest, else ``None``."""
        return self._manifest_of(self.get_bytes(digest, what=what), digest, what)

    def _manifest_of(self, data: bytes, digest: str, what: str) -> list[dict[str, Any]] | None:
        if not data.startswith(b"{"):
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND:
            return None
        files = doc.get("files")
        if not isinstance(files, list):
            raise IntegrityError(f"Directory manifest {digest} of {what or 'an artifact'} is malformed.")
        for f in files:
            validate_member_path(f.get("path"))
            _hex(f.get("digest", ""))
        return files


class LocalBlobStore(BlobStore):
    """Blobs in a local folder: ``<root>/sha256/<2 hex>/<62 hex>``."""

    def describe(self) -> str:
        return str(self.root)

    def check(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"The artifact folder {self.root} is missing or not writable.")

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        try:
            (self.root / "sha256").mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.root / "tmp").mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"Cannot create the artifact folder {self.root}: {e.strerror}.") from e

    def path_of(self, digest: str) -> Path:
        h = _hex(digest)
        return self.root / "sha256" / h[:2] / h[2:]

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def read_manifest(self, digest: str, *, what: str = "") -> list[dict[str, Any]] | None:
        p = self.path_of(digest)
        try:
            if p.stat().st_size > 64 << 20:
                return None
            with open(p, "rb") as f:
                if f.read(1) != b"{":
                    return None
        except FileNotFoundError as e:
            raise IntegrityError(
                f"The stored blob {digest} of {what or 'an artifact'} is missing from {self.root}.{_SHARE_HINT}"
            ) from e
        return super().read_manifest(digest, what=what)

    def _commit(self, tmp: Path, digest: str) -> str:
        final = self.path_of(digest)
        if final.is_file():
            tmp.unlink(missing_ok=True)
            return digest
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(tmp, final)
        os.chmod(final, 0o400)  # read-only, and only for the owner
        dfd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return digest

    def put_bytes(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return self._commit(Path(name), digest)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def put_file(self, path: str | Path, progress: Callable[[int, int], None] | None = None) -> str:
        """Hash and copy in one streaming pass; the write runs in a second thread beside the hashing."""
        src = Path(path)
        try:
            total = src.stat().st_size
            fin = open(src, "rb")
        except OSError as e:
            raise DataError(f"Cannot read {src}: {e.strerror}.") from e
        fd, name = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
        tmp = Path(name)
        try:
            with fin, os.fdopen(fd, "wb", buffering=0) as fout:
                digest = _copy_hashing(fin, fout, total, progress)
                os.fsync(fout.fileno())
            return self._commit(tmp, digest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @contextmanager
    def open_verified(self, digest: str, *, what: str = "") -> Iterator[IO[bytes]]:
        """Open a blob after checking its hash (one streaming pass)."""
        p = self.path_of(digest)
        if not p.is_file():
            raise IntegrityError(
                f"The stored blob {digest} of {what or 'an artifact'} is missing from {self.root}.{_SHARE_HINT}"
            )
        actual = sha256_file(p)
        if actual != digest:
            raise IntegrityError(
                f"The stored blob of {what or 'an artifact'} is corrupted or was swapped: expected {digest}, "
                f"found {actual}. Restore it from a backup; nothing was loaded."
            )
        with open(p, "rb") as f:
            yield f

    def get_bytes(self, digest: str, *, what: str = "") -> bytes:
        p = self.path_of(digest)
        try:
            data = p.read_bytes()
        except FileNotFoundError as e:
            raise IntegrityError(
                f"The stored blob {digest} of {what or 'an artifact'} is missing from {self.root}.{_SHARE_HINT}"
            ) from e
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityError(
                f"The stored blob of {what or 'an artifact'} is corrupted or was swapped: expected {digest}, "
                f"found {actual}. Restore it from a backup; nothing was loaded."
            )
        return data

    def materialize(self, digest: str, dest: str | Path, *, what: str = "") -> Path:
        """Write a verified copy of a file blob (to ``dest``) or a directory (into ``dest``)."""
        dest = Path(dest)
        files = self.read_manifest(digest, what=what)
        if files is None:
            self._copy_verified(digest, dest, what=what)
            return dest
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for f in files:
            target = (root / f["path"]).resolve()
            if root not in target.parents:
                raise IntegrityError(f"Manifest path {f['path']!r} of {what or 'an artifact'} leaves the folder.")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._copy_verified(f["digest"], target, what=f"{what} file {f['path']}")
        return dest

    def _copy_verified(self, digest: str, target: Path, *, what: str) -> None:
        src = self.path_of(digest)
        if not src.is_file():
            raise IntegrityError(
                f"The stored blob {digest} of {what or 'an artifact'} is missing from {self.root}.{_SHARE_HINT}"
            )
        tmp = target.with_name(target.name + ".bastion-tmp")
        try:
            with open(src, "rb") as fin, open(tmp, "wb", buffering=0) as fout:
                actual = _copy_hashing(fin, fout, src.stat().st_size, None)
            if actual != digest:
                raise IntegrityError(
                    f"The stored blob of {what or 'an artifact'} is corrupted or was swapped: expected {digest}, "
                    f"found {actual}. Restore it from a backup; nothing was loaded."
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, digest: str) -> None:
        p = self.path_of(digest)
        if p.exists():
            os.chmod(p, 0o644)
            p.unlink()

    def iter_digests(self) -> Iterator[str]:
        base = self.root / "sha256"
        for sub in sorted(base.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    yield "sha256:" + sub.name + f.name

    def clean_tmp(self, *, older_than: float = 3600.0) -> int:
        """Remove temp files left by interrupted writes (old enough that no writer still owns them)."""
        import time

        n = 0
        cutoff = time.time() - older_than
        for f in (self.root / "tmp").iterdir():
            try:
                if f.stat().st_mtime < cutoff:
                    f.unlink(missing_ok=True)
                    n += 1
            except FileNotFoundError:
                continue
        return n


def _copy_hashing(
    fin: io.BufferedReader, fout: IO[bytes], total: int, progress: Callable[[int, int], None] | None
) -> str:
    """Stream ``fin`` to ``fout`` while hashing; hashing and writing overlap in two threads."""
    h = hashlib.sha256()
    if total <= CHUNK:
        data = fin.read()
        h.update(data)
        fout.write(data)
        if progress:
            progress(len(data), total)
        return "sha256:" + h.hexdigest()
    q: queue.Queue[memoryview | None] = queue.Queue(maxsize=3)
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(4):
        free.put(bytearray(CHUNK))
    error: list[BaseException] = []

    def writer() -> None:
        try:
            while (item := q.get()) is not None:
                fout.write(item)
                free.put(item.obj)  # type: ignore[arg-type]
        except BaseException as e:  # surfaced in the caller
            error.append(e)
            while q.get() is not None:
                pass

    t = threading.Thread(target=writer, name="bastion-blob-writer", daemon=True)
    t.start()
    done = 0
    try:
        while True:
            buf = free.get()
            n = fin.readinto(buf)
            if not n:
                break
            view = memoryview(buf)[:n]
            h.update(view)
            q.put(view)
            done += n
            if progress:
                progress(done, total)
            if error:
                break
    finally:
        q.put(None)
        t.join()
    if error:
        raise StoreError(f"Writing a blob failed: {error[0]}") from error[0]
    return "sha256:" + h.hexdigest()


# Below this size a blob is written without asking first whether the store has it (one round trip, not two
# or three: s3fs's exists() of a missing key also lists the prefix).
_PUT_CHECK_BYTES = 8 * 1024 * 1024
_NETWORK_ERROR_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "urllib3", "requests", "gcsfs", "adlfs")


def _is_network_error(e: BaseException) -> bool:
    if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
        return True
    return any(c.__module__.split(".")[0] in _NETWORK_ERROR_MODULES for c in type(e).__mro__)


def s3_fs_kwargs(storage_options: dict[str, Any]) -> dict[str, Any]:
    """fsspec/s3fs keyword arguments from Bastion's ``storage_options`` (endpoint, region, timeouts).

    Short connect timeouts and few retries, so that an unreachable endpoint fails in seconds; no listings
    cache, so that blobs written by another machine are seen at once.
    """
    opts = dict(storage_options)
    kwargs: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
    if "endpoint_url" in opts:
        kwargs["endpoint_url"] = opts["endpoint_url"]
    if "region" in opts:
        kwargs["client_kwargs"] = {"region_name": opts["region"]}
    if "profile" in opts:
        kwargs["profile"] = opts["profile"]
    kwargs["config_kwargs"] = {
        "connect_timeout": float(opts.get("connect_timeout", 3.0)),
        "read_timeout": float(opts.get("read_timeout", 60.0)),
        "retries": {"max_attempts": int(opts.get("max_attempts", 2)), "mode": "standard"},
    }
    return kwargs


class FsspecBlobStore(BlobStore):
    """Blobs on any fsspec filesystem (S3-compatible object storage for teams).

    Network failures become one-line :class:`StoreError` (exit 2) naming the endpoint; a missing blob is
    an :class:`IntegrityError`; every read is verified against its digest.
    """

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url
        self.scheme = url.split("://", 1)[0]
        opts = dict(storage_options or {})
        kwargs = s3_fs_kwargs(opts) if self.scheme in {"s3", "s3a"} else {}
        self.endpoint = str(opts.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3")
                            or os.environ.get("AWS_ENDPOINT_URL") or "")
        try:
            self.fs, self.base = fsspec.core.url_to_fs(url, **kwargs)
            if self.scheme in {"s3", "s3a"}:
                # s3fs retries each call 5 times on top of botocore's attempts; keep the whole of it short
                self.fs.retries = int(opts.get("max_attempts", 2))
        except ImportError as e:
            raise StoreError(
                f"The artifact store {url} needs the fsspec driver for '{self.scheme}://' "
                f"({e.name or e}); for S3 install s3fs (`pip install s3fs`)."
            ) from e
        except ValueError as e:
            raise ConfigError(f"The artifact store URL {url!r} is not usable: {e}.") from e

    def describe(self) -> str:
        """The store for messages: URL and endpoint (never credentials)."""
        if self.endpoint:
            return f"{self.url} at {self.endpoint}"
        return f"{self.url} (default {self.scheme} endpoint)" if self.scheme in {"s3", "s3a"} else self.url

    @contextmanager
    def _net(self, doing: str) -> Iterator[None]:
        try:
            yield
        except BastionError:
            raise
        except FileNotFoundError:
            raise
        except Exception as e:
            if not _is_network_error(e):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise StoreError(
                f"Cannot {doing} the object store {self.describe()}: {first}. Check the endpoint "
                "(storage_options.endpoint_url or AWS_ENDPOINT_URL), the network and the credentials "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)."
            ) from e

    def _key(self, digest: str) -> str:
        h = _hex(digest)
        return f"{self.base.rstrip('/')}/sha256/{h[:2]}/{h[2:]}"

    def check(self) -> None:
        """Reach the store: list its root (raises :class:`StoreError` when unreachable or the bucket is missing)."""
        bucket = self.base.split("/", 1)[0]
        with self._net("reach"):
            try:
                found = bool(self.fs.exists(bucket))
            except FileNotFoundError:
                found = False
        if not found:
            raise StoreError(f"The bucket {bucket!r} of the object store {self.describe()} does not exist; "
                             "create it first.")

    def exists(self, digest: str) -> bool:
        with self._net("read from"):
            return bool(self.fs.exists(self._key(digest)))

    def identity(self, digest: str) -> tuple[str, int] | None:
        """``(ETag, size)`` of the stored object (one HEAD request), or None when it is missing: lets a
        reader reuse what it verified before only while the object is the one it verified."""
        with self._net("read from"):
            try:
                info = self.fs.info(self._key(digest))
            except FileNotFoundError:
                return None
        etag = str(info.get("ETag") or info.get("etag") or "")
        if not etag:
            return None
        return (etag, int(info.get("size", -1)))

    def _put_missing_bucket(self, e: FileNotFoundError) -> StoreError:
        bucket = self.base.split("/", 1)[0]
        return StoreError(f"Cannot write to the object store {self.describe()}: bucket {bucket!r} does not exist "
                          f"({e}). Create it first.")

    def put_bytes(self, data: bytes) -> str:
        # Content-addressed, so writing again is harmless: one request instead of a look-up first.
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if len(data) >= _PUT_CHECK_BYTES and self.exists(digest):
            return digest
        with self._net("write to"):
            try:
                self.fs.pipe_file(self._key(digest), data)
            except FileNotFoundError as e:
                raise self._put_missing_bucket(e) from e
        return digest

    def put_file(self, path: str | Path, progress: Callable[[int, int], None] | None = None) -> str:
        digest = sha256_file(path)
        if Path(path).stat().st_size < _PUT_CHECK_BYTES or not self.exists(digest):
            with self._net("write to"):
                try:
                    self.fs.put_file(str(path), self._key(digest))
                except FileNotFoundError as e:
                    raise self._put_missing_bucket(e) from e
        return digest

    def get_bytes(self, digest: str, *, what: str = "") -> bytes:
        with self._net("read from"):
            try:
                data = bytes(self.fs.cat_file(self._key(digest)))
            except FileNotFoundError as e:
                raise IntegrityError(
                    f"The stored blob {digest} of {what or 'an artifact'} is missing from {self.describe()}."
                    + _SHARE_HINT
                ) from e
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"The stored blob of {what or 'an artifact'} is corrupted or was swapped ({digest}).")
        return data

    def materialize(self, digest: str, dest: str | Path, *, what: str = "") -> Path:
        dest = Path(dest)
        data = self.get_bytes(digest, what=what)  # fetched once: a single file, or the manifest of a folder
        files = self._manifest_of(data, digest, what)
        if files is None:
            dest.write_bytes(data)
            return dest
        for f in files:
            target = dest / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.get_bytes(f["digest"], what=what))
        return dest

    def delete(self, digest: str) -> None:
        if self.exists(digest):
            with self._net("delete from"):
                self.fs.rm_file(self._key(digest))

    def iter_digests(self) -> Iterator[str]:
        with self._net("list"):
            keys = list(self.fs.find(f"{self.base.rstrip('/')}/sha256"))
        for key in keys:
            parts = key.rstrip("/").split("/")
            yield "sha256:" + parts[-2] + parts[-1]


def open_blob_store(url: str, *, storage_options: dict[str, Any] | None = None) -> BlobStore:
    """A blob store for a local path or an fsspec URL (``storage_options``: endpoint, region, timeouts)."""
    if "://" in url and not url.startswith("file://"):
        return FsspecBlobStore(url, storage_options=storage_options)
    return LocalBlobStore(url.removeprefix("file://"))
