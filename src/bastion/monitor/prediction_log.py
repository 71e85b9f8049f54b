"""The prediction log: one row per request the server answered (or refused), as Parquet files
rolled by size and age under ``<project home>/predictions/<model name>/``; writer and readers.

Schema (version 1)
------------------
``request_id`` string, ``ts`` timestamp[us, UTC], ``model`` string, ``version`` int64,
``key_id`` string (null when unauthenticated), ``client`` string (IP), ``outcome`` string
(``ok | invalid | unauthorized | rate_limited | error``), ``latency_ms`` float64, then one
column per input feature named ``in.<feature>`` and the prediction columns ``out.label`` and, for
binary classifiers, ``out.proba`` (probability of the positive class). Every file carries
``bastion.prediction_log.schema_version = 1`` in its Parquet metadata.

Durability: each appended batch first goes, as one Arrow IPC frame, to a per-writer write-ahead
log (flushed to the OS on every append, fsynced on every roll), so a crashed process loses nothing;
the next writer for the same model folds orphaned write-ahead logs into Parquet on open (older
JSON-lines write-ahead logs are still read). Batches stay columnar from the server to Parquet: the
server's shipper appends Arrow tables (:meth:`PredictionLogWriter.append_table`), never per-row dicts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import stat
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    # imported where used (pyarrow.dataset imports pandas): the server's log shipper, a child process that
    # only writes, then starts in a fraction of a second
    import pandas as pd
    import pyarrow.dataset as pads

from bastion.errors import DataError

__all__ = [
    "BASE_COLUMNS",
    "INPUT_PREFIX",
    "OUTCOMES",
    "OUTPUT_PREFIX",
    "SCHEMA_VERSION",
    "Outcome",
    "PredictionLogWriter",
    "PredictionRecord",
    "column_array",
    "inputs_frame",
    "iter_prediction_log",
    "prediction_log_dir",
    "prediction_log_files",
    "read_prediction_log",
    "ship_prediction_logs",
]

log = logging.getLogger("bastion.monitor")

SCHEMA_VERSION = 1
INPUT_PREFIX = "in."
OUTPUT_PREFIX = "out."
Outcome = Literal["ok", "invalid", "unauthorized", "rate_limited", "error"]
OUTCOMES: tuple[str, ...] = ("ok", "invalid", "unauthorized", "rate_limited", "error")
BASE_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("version", pa.int64()),
        ("key_id", pa.string()),
        ("client", pa.string()),
        ("outcome", pa.string()),
        ("latency_ms", pa.float64()),
    ]
)
BASE_COLUMNS: tuple[str, ...] = tuple(BASE_SCHEMA.names)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_META_KEY = b"bastion.prediction_log.schema_version"


@dataclass(frozen=True)
class PredictionRecord:
    """One logged request. ``inputs``/``outputs`` are keyed by bare names; the log adds the prefixes."""

    request_id: str
    version: int
    outcome: Outcome = "ok"
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    key_id: str | None = None
    client: str | None = None
    latency_ms: float | None = None
    ts: datetime | None = None

    def to_row(self, model: str) -> dict[str, Any]:
        ts = self.ts or datetime.now(UTC)
        if ts.tzinfo is None:
            raise DataError("PredictionRecord.ts must be timezone-aware (UTC); got a naive datetime.")
        if self.outcome not in OUTCOMES:
            raise DataError(f"outcome must be one of {OUTCOMES}; got {self.outcome!r}.")
        row: dict[str, Any] = {
            "request_id": str(self.request_id),
            "ts": ts.astimezone(UTC).isoformat(),
            "model": model,
            "version": int(self.version),
            "key_id": self.key_id,
            "client": self.client,
            "outcome": self.outcome,
            "latency_ms": None if self.latency_ms is None else float(self.latency_ms),
        }
        for k, v in self.inputs.items():
            row[INPUT_PREFIX + str(k)] = _plain(v)
        for k, v in self.outputs.items():
            row[OUTPUT_PREFIX + str(k)] = _plain(v)
        return row


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        try:
            return v.item()
        except (ValueError, TypeError):
            return str(v)
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)


def _check_name(model: str) -> str:
    if not _NAME_RE.fullmatch(model):
        raise DataError(f"Model name {model!r} is not a valid log folder name (letters, digits, . _ -).")
    return model


def prediction_log_dir(home: str | Path | Any, model: str) -> Path:
    """``<project home>/predictions/<model>``; ``home`` is a path or a Project."""
    base = Path(home.settings.home_path) if hasattr(home, "settings") else Path(home)
    return base / "predictions" / _check_name(model)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (``PredictionRecord.to_row`` dicts, or a legacy JSON-lines WAL) to an Arrow table."""
    extra: list[str] = []
    seen: set[str] = set()
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                if k not in BASE_COLUMNS:
                    extra.append(k)
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for f in BASE_SCHEMA:
        vals = [r.get(f.name) for r in rows]
        if f.name == "ts":
            import pandas as pd

            arr = pa.array(pd.to_datetime(pd.Series(vals, dtype=object), utc=True, format="ISO8601"), type=f.type)
        else:
            arr = pa.array(vals, type=f.type)
        arrays.append(arr)
        fields.append(f)
    others = [c for c in extra if not c.startswith((INPUT_PREFIX, OUTPUT_PREFIX))]
    if others:
        raise DataError(f"Prediction log columns must be base columns or start with 'in.'/'out.'; got {others}.")
    for name in extra:
        arr = column_array([r.get(name) for r in rows])
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def column_array(values: Sequence[Any], dtype: pa.DataType | None = None) -> pa.Array:
    """One log column from Python values: typed when ``dtype`` is given and fits, else inferred, else text."""
    if dtype is not None:
        try:
            return pa.array(values, type=dtype)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(_plain(v)) for v in values], type=pa.string())


def _conform(table: pa.Table) -> pa.Table:
    """Check a table appended by a caller: every base column with its type (missing ones null), extra
    columns only ``in.``/``out.``; returns it in log column order with the schema-version metadata."""
    names = table.column_names
    others = [c for c in names if c not in BASE_COLUMNS and not c.startswith((INPUT_PREFIX, OUTPUT_PREFIX))]
    if others:
        raise DataError(f"Prediction log columns must be base columns or start with 'in.'/'out.'; got {others}.")
    if len(set(names)) != len(names):
        raise DataError(f"Prediction log batch has duplicate columns: {names}.")
    arrays: list[Any] = []
    for f in BASE_SCHEMA:
        if f.name not in names:
            arrays.append(pa.nulls(table.num_rows, type=f.type))
            continue
        col = table.column(f.name)
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise DataError(f"Prediction log column '{f.name}' must be {f.type}; got {col.type}.") from e
        arrays.append(col)
    if "outcome" in names:
        bad = set(table.column("outcome").unique().to_pylist()) - set(OUTCOMES)
        if bad:
            raise DataError(f"outcome must be one of {OUTCOMES}; got {sorted(map(str, bad))}.")
    extra = sorted(c for c in names if c.startswith(INPUT_PREFIX)) + sorted(
        c for c in names if c.startswith(OUTPUT_PREFIX))
    fields = list(BASE_SCHEMA) + [table.schema.field(c) for c in extra]
    arrays += [table.column(c) for c in extra]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata={_META_KEY: str(SCHEMA_VERSION).encode()}))


def _concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Buffered batches as one table: missing columns become nulls, int/float widen; a column whose
    batches disagree otherwise (numbers in one, text in another) is kept as text."""
    try:
        out = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        types: dict[str, set[pa.DataType]] = {}
        for t in tables:
            for f in t.schema:
                if not pa.types.is_null(f.type):
                    types.setdefault(f.name, set()).add(f.type)
        clash = {n for n, ts in types.items()
                 if len(ts) > 1 and not all(pa.types.is_integer(x) or pa.types.is_floating(x) for x in ts)}
        fixed = []
        for t in tables:
            for n in clash & set(t.column_names):
                i = t.column_names.index(n)
                t = t.set_column(i, n, pa.array([None if v is None else str(v) for v in t.column(n).to_pylist()],
                                                type=pa.string()))
            fixed.append(t)
        out = pa.concat_tables(fixed, promote_options="permissive")
    names = out.column_names
    order = list(BASE_COLUMNS) + sorted(c for c in names if c.startswith(INPUT_PREFIX)) + sorted(
        c for c in names if c.startswith(OUTPUT_PREFIX))
    return out.select(order).replace_schema_metadata({_META_KEY: str(SCHEMA_VERSION).encode()})


# Write-ahead-log frames: magic, payload length, CRC-32 of the payload, then one Arrow IPC stream (schema +
# batches). A frame cut short by a crash fails its length or checksum and is dropped (never acknowledged).
_FRAME = struct.Struct("<4sII")
_FRAME_MAGIC = b"BPL1"
_WAL_SUFFIX = ".arrows"
_LEGACY_WAL_SUFFIX = ".jsonl"


def _frame(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    payload: bytes = sink.getvalue().to_pybytes()
    return _FRAME.pack(_FRAME_MAGIC, len(payload), zlib.crc32(payload)) + payload


# What a damaged or foreign write-ahead log can raise while it is decoded into log rows (Arrow's errors
# are ValueError/TypeError subclasses; pandas raises ValueError for a bad timestamp).
_DAMAGE = (DataError, KeyError, ValueError, TypeError, pa.ArrowException)


class _ForeignWal(Exception):
    """A file named like a write-ahead log that this process must not read (not a regular file, not ours)."""


def _read_wal_bytes(path: Path) -> bytes:
    """The bytes of a write-ahead log: a regular file owned by this user, never through a symlink and
    never a FIFO or device (which would block or never end and stall every writer waiting on the lock)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise _ForeignWal(f"cannot be opened safely ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _ForeignWal("is not a regular file")
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise _ForeignWal(f"belongs to another user (uid {st.st_uid})")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _read_frames(path: Path) -> tuple[list[pa.Table], bool]:
    """The complete frames of a write-ahead log, and whether a torn or damaged tail was dropped.

    A frame whose checksum holds but whose content is not a log batch (a foreign or crafted file)
    counts as damage too: recovery keeps the frames before it and never fails on it.
    """
    data = _read_wal_bytes(path)
    tables: list[pa.Table] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _FRAME.size:
            return tables, True
        magic, n, crc = _FRAME.unpack_from(data, pos)
        payload = data[pos + _FRAME.size : pos + _FRAME.size + n]
        if magic != _FRAME_MAGIC or len(payload) != n or zlib.crc32(payload) != crc:
            return tables, True
        try:
            table = pa.ipc.open_stream(payload).read_all()
            if not set(BASE_COLUMNS) <= set(table.column_names):
                raise DataError("a write-ahead-log frame lacks the base columns")
            tables.append(_conform(table))
        except _DAMAGE:
            return tables, True
        pos += _FRAME.size + n
    return tables, False


def _read_legacy_wal(path: Path) -> tuple[list[pa.Table], bool]:
    rows: list[dict[str, Any]] = []
    torn = False
    for line in _read_wal_bytes(path).decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            torn = True
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            torn = True
    if not rows:
        return [], torn
    try:
        return [_conform(_rows_to_table(rows))], torn
    except _DAMAGE:
        pass
    # some row does not fit the log schema: keep the ones that do
    tables = []
    for row in rows:
        try:
            tables.append(_conform(_rows_to_table([row])))
        except _DAMAGE:
            torn = True
    return tables, True


class PredictionLogWriter:
    """Append prediction rows; roll to a new Parquet file by row count, size or age.

    Thread-safe. Use as a context manager or call :meth:`close`. Each writer owns its own
    write-ahead log, so several server processes may log the same model at once.

    Parameters
    ----------
    home
        Project home (``project.settings.home_path``), or the Project itself.
    model
        Model name (one folder per model).
    max_rows, max_bytes, max_age_s
        Roll the buffered rows into a Parquet file when any limit is reached (``max_bytes`` counts
        the buffered Arrow data).
    fsync
        ``"roll"`` (default: fsync the WAL and file on every roll), ``"always"`` (fsync each
        append: survives power loss, slower) or ``"never"``.
    """

    def __init__(
        self,
        home: str | Path | Any,
        model: str,
        *,
        max_rows: int = 50_000,
        max_bytes: int = 32 * 1024 * 1024,
        max_age_s: float = 300.0,
        fsync: Literal["roll", "always", "never"] = "roll",
    ) -> None:
        self.model = _check_name(model)
        self.dir = prediction_log_dir(home, model)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_rows, self.max_bytes, self.max_age_s = max_rows, max_bytes, max_age_s
        self._fsync = fsync
        self._lock = threading.Lock()
        self._tables: list[pa.Table] = []
        self._rows = 0
        self._bytes = 0
        self._first_at: float | None = None
        self._seq = 0
        self._closed = False
        self._id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wal_path = self.dir / f".wal-{self._id}{_WAL_SUFFIX}"
        self.files_written: list[Path] = []
        self._recover_orphans()
        # predictions may hold personal data: the WAL and the rolled files are the owner's only
        self._wal: IO[bytes] = os.fdopen(os.open(self._wal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")

    # -- public -------------------------------------------------------------------------
    def append(self, record: PredictionRecord | Mapping[str, Any]) -> None:
        """Log one request (a ``PredictionRecord``, or a mapping of its fields)."""
        self.extend([record])

    def extend(self, records: Sequence[PredictionRecord | Mapping[str, Any]]) -> None:
        """Log many requests with one write-ahead-log write."""
        rows: list[dict[str, Any]] = []
        for record in records:
            if isinstance(record, Mapping):
                record = PredictionRecord(**dict(record))
            rows.append(record.to_row(self.model))
        if rows:
            self.append_table(_rows_to_table(rows))

    def append_table(self, table: pa.Table | pa.RecordBatch) -> None:
        """Log a columnar batch (the server's shipper calls this): base columns (``model`` may be left
        out and is filled in) plus ``in.``/``out.`` columns; one write-ahead-log write."""
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if table.num_rows == 0:
            return
        if "model" not in table.column_names:
            table = table.append_column("model", pa.array([self.model] * table.num_rows, type=pa.string()))
        table = _conform(table)
        frame = _frame(table)
        with self._lock:
            if self._closed:
                raise DataError("This PredictionLogWriter is closed; open a new one.")
            self._wal.write(frame)
            self._wal.flush()
            if self._fsync == "always":
                os.fsync(self._wal.fileno())
            self._tables.append(table)
            self._rows += table.num_rows
            self._bytes += table.nbytes
            if self._first_at is None:
                self._first_at = time.monotonic()
            if self._should_roll():
                self._roll()

    def maybe_roll(self) -> Path | None:
        """Roll if the oldest buffered row is older than ``max_age_s`` (call from a timer)."""
        with self._lock:
            if self._tables and self._should_roll():
                return self._roll()
        return None

    def flush(self) -> Path | None:
        """Write buffered rows to a new Parquet file now; returns its path (None if nothing buffered)."""
        with self._lock:
            return self._roll() if self._tables else None

    def close(self) -> None:
        """Flush and release the write-ahead log."""
        with self._lock:
            if self._closed:
                return
            if self._tables:
                self._roll()
            self._closed = True
            self._wal.close()
            self._wal_path.unlink(missing_ok=True)

    def __enter__(self) -> PredictionLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------
    def _should_roll(self) -> bool:
        if self._rows >= self.max_rows or self._bytes >= self.max_bytes:
            return True
        return self._first_at is not None and time.monotonic() - self._first_at >= self.max_age_s

    def _roll(self) -> Path:
        if self._fsync != "never":
            self._wal.flush()
            os.fsync(self._wal.fileno())
        path = self._write_parquet(_concat(self._tables))
        # The rows are durable in Parquet; start a fresh write-ahead log.
        self._wal.seek(0)
        self._wal.truncate()
        self._tables, self._rows, self._bytes, self._first_at = [], 0, 0, None
        return path

    def _write_parquet(self, table: pa.Table, *, name: str | None = None) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        if name is None:
            self._seq += 1
            name = f"part-{stamp}-{self._id}-{self._seq:06d}.parquet"
        final = self.dir / name
        tmp = final.with_name("." + final.name + ".tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.chmod(tmp, 0o600)
        if self._fsync != "never":
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        if self._fsync != "never":
            _fsync_dir(self.dir)
        self.files_written.append(final)
        log.debug("prediction log rolled: %s rows to %s", table.num_rows, final.name)
        return final

    def _recover_orphans(self) -> None:
        """Fold write-ahead logs of dead writers (same host) into Parquet.

        Writers of several server workers open at once: a lock file makes one of them do it, and the
        recovered file's name derives from the dead writer's id, so a recovery cut short is not
        written twice.
        """
        host = socket.gethostname()
        # the lock lives beside the model folder, which then holds nothing but log files
        with open(self.dir.parent / f".recover-{self.model}.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            for wal in sorted([*self.dir.glob(f".wal-*{_WAL_SUFFIX}"), *self.dir.glob(f".wal-*{_LEGACY_WAL_SUFFIX}")]):
                suffix = _WAL_SUFFIX if wal.name.endswith(_WAL_SUFFIX) else _LEGACY_WAL_SUFFIX
                wal_id = wal.name[len(".wal-") : -len(suffix)]
                parts = wal_id.rsplit("-", 2)
                if len(parts) != 3 or parts[0] != host:
                    continue
                try:
                    pid = int(parts[1])
                except ValueError:
                    continue
                if _pid_alive(pid):
                    continue
                try:
                    tables, torn = (_read_frames if suffix == _WAL_SUFFIX else _read_legacy_wal)(wal)
                except FileNotFoundError:
                    continue
                except _ForeignWal as e:
                    log.warning("prediction log: %s %s; left alone, not recovered", wal.name, e)
                    continue
                if torn:
                    log.warning("prediction log: dropped a torn tail of %s (a write cut short by a crash)", wal.name)
                done = f"-{wal_id}-recovered.parquet"
                if tables and not any(self.dir.glob(f"part-*{done}")):
                    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
                    self._write_parquet(_concat(tables), name=f"part-{stamp}{done}")
                wal.unlink(missing_ok=True)
            for tmp in self.dir.glob(".part-*.tmp"):
                if not any(self.dir.glob(f".wal-*-{_tmp_owner(tmp)}-*")):
                    tmp.unlink(missing_ok=True)


def _tmp_owner(tmp: Path) -> str:
    """The pid in a temporary Parquet file's name (``.part-<stamp>-<host>-<pid>-<hex>-…``), or ''."""
    m = re.search(r"-(\d+)-[0-9a-f]{8}-(?:\d{6}|recovered)\.parquet\.tmp$", tmp.name)
    return m.group(1) if m else ""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _local_parts(home: str | Path | Any, model: str) -> list[Path]:
    d = prediction_log_dir(home, model)
    return sorted(d.glob("part-*.parquet")) if d.is_dir() else []


def _object_store(source: Any, folder: str = "predictions") -> tuple[Any, str, str] | None:
    """``(fs, base path, URL)`` of the project's ``folder`` (prediction logs, labels) in its object store, or
    None when the project keeps artifacts on local disk (``source`` may also be a bare home path: then None)."""
    settings = getattr(source, "settings", None)
    url = str(getattr(settings, "artifacts", "") or "")
    if "://" not in url or url.startswith("file://"):
        return None
    import fsspec

    from bastion.store.blobs import s3_fs_kwargs

    scheme = url.split("://", 1)[0]
    kwargs = s3_fs_kwargs(dict(settings.storage_options)) if scheme in {"s3", "s3a"} else {}  # type: ignore[union-attr]
    fs, base = fsspec.core.url_to_fs(url, **kwargs)
    return fs, f"{base.rstrip('/')}/{folder}", f"{url.rstrip('/')}/{folder}"


def _day_of(name: str) -> str:
    m = re.fullmatch(r"part-(\d{4})(\d{2})(\d{2})T.*\.parquet", name)
    if m is None:
        raise DataError(f"Prediction log file {name!r} does not carry its date (part-YYYYMMDDT...).")
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"


def ship_files(project: Any, folder: str, model: str, files: Sequence[Path], *, day: bool = True) -> list[str]:
    """Upload ``files`` to ``<artifacts_url>/<folder>/<model>/[day=YYYY-MM-DD/]<name>`` and delete each local
    copy once the object store holds it with the same size. No-op (returns []) without an object store."""
    store = _object_store(project, folder)
    if store is None:
        return []
    fs, base, url = store
    shipped = []
    with _remote_errors("ship", url):
        for part in files:
            sub = f"day={_day_of(part.name)}/" if day else ""
            key = f"{base}/{_check_name(model)}/{sub}{part.name}"
            size = part.stat().st_size
            fs.put_file(str(part), key)
            if int(fs.info(key)["size"]) != size:
                raise DataError(f"The object store holds {key} with another size than {part}; kept the local file.")
            part.unlink(missing_ok=True)
            shipped.append(key)
    return shipped


def fetch_files(project: Any, folder: str, model: str, name_re: str, *, day: bool = True) -> list[Path] | None:
    """Every file of ``model`` under ``<artifacts_url>/<folder>/`` whose name matches ``name_re``, copied once
    into ``<home>/cache/<folder>/<model>/`` (files never change); sorted by name. None without an object
    store. Keys of any other shape are ignored, never read."""
    store = _object_store(project, folder)
    if store is None:
        return None
    fs, base, url = store
    cache = prediction_log_dir(project, model).parent.parent / "cache" / folder / _check_name(model)
    out: list[Path] = []
    with _remote_errors("read", url):
        try:
            found = fs.find(f"{base}/{model}", detail=True)
        except FileNotFoundError:
            found = {}
        for key, info in sorted(found.items()):
            parts = key[len(f"{base}/{model}/"):].split("/")
            if day:
                if len(parts) != 2 or not re.fullmatch(r"day=\d{4}-\d{2}-\d{2}", parts[0]):
                    continue
            elif len(parts) != 1:
                continue
            if not re.fullmatch(name_re, parts[-1]):
                continue
            local = cache.joinpath(*parts)
            if not local.is_file() or local.stat().st_size != int(info.get("size", -1)):
                local.parent.mkdir(parents=True, exist_ok=True)
                tmp = local.with_name("." + local.name + ".tmp")
                fs.get_file(key, str(tmp))
                os.replace(tmp, local)
            out.append(local)
    return sorted(out, key=lambda p: p.name)


@contextlib.contextmanager
def _remote_errors(what: str, url: str) -> Iterator[None]:
    from bastion.errors import StoreError
    from bastion.store.blobs import _is_network_error

    try:
        yield
    except DataError:
        raise
    except Exception as e:
        if not _is_network_error(e):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise StoreError(f"Cannot {what} prediction logs at {url}: {first}. Check the object store "
                         "settings (artifacts_url, storage_options, AWS_* credentials).") from e


def ship_prediction_logs(project: Any, model: str) -> list[str]:
    """Move the model's finished local Parquet files (rolled from the write-ahead log) to the object store,
    partitioned as ``<artifacts_url>/predictions/<model>/day=YYYY-MM-DD/<file>``; returns what was shipped.

    A file is deleted locally only after the object store holds it with the same size. No-op for a project
    whose artifacts are on local disk (the files already are where ``monitor run`` reads them).
    """
    shipped = ship_files(project, "predictions", model, _local_parts(project, model))
    if shipped:
        log.info("prediction log: shipped %s file(s) of %s", len(shipped), model)
    return shipped


def prediction_log_files(home: str | Path | Any, model: str) -> list[Path]:
    """The model's Parquet log files, oldest first.

    For a project with an object store, local files are shipped first, then every file of the model in the
    object store (from any machine) is fetched into ``<home>/cache/predictions/<model>/`` (once; files never
    change) and those local copies are returned, so readers and local Dask workers read plain files.
    """
    if _object_store(home) is None:
        return _local_parts(home, model)
    ship_prediction_logs(home, model)
    return fetch_files(home, "predictions", model, r"part-[A-Za-z0-9._-]+\.parquet") or []


def _dataset(files: Sequence[str | Path]) -> pads.Dataset:
    import pyarrow.dataset as pads

    schemas = [pq.read_schema(f) for f in files]
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataError(f"Prediction log files disagree on column types: {e}.") from e
    return pads.dataset([str(f) for f in files], format="parquet", schema=schema)


def _filter(start: datetime | None, end: datetime | None) -> Any:
    import pyarrow.dataset as pads

    expr = None
    for op, bound in (("ge", start), ("lt", end)):
        if bound is None:
            continue
        if bound.tzinfo is None:
            raise DataError("start/end must be timezone-aware datetimes (UTC).")
        scalar = pa.scalar(bound.astimezone(UTC), type=pa.timestamp("us", tz="UTC"))
        e = pads.field("ts") >= scalar if op == "ge" else pads.field("ts") < scalar
        expr = e if expr is None else expr & e
    return expr


def iter_prediction_log(
    source: str | Path | Any,
    model: str | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Sequence[str] | None = None,
    batch_size: int = 65_536,
) -> Iterator[pa.RecordBatch]:
    """Stream the log in record batches (constant memory). ``source`` is a project/home with
    ``model``, or Parquet path(s)/glob with ``model=None``."""
    files = _files(source, model)
    if not files:
        return
    ds = _dataset(files)
    cols = [c for c in columns if c in ds.schema.names] if columns is not None else None
    yield from ds.to_batches(columns=cols, filter=_filter(start, end), batch_size=batch_size)


def _files(source: str | Path | Any, model: str | None) -> list[Path]:
    if model is not None:
        return prediction_log_files(source, model)
    from bastion.monitor._source import expand_paths

    return [Path(p) for p in expand_paths(source)]


def read_prediction_log(
    source: str | Path | Any,
    model: str | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The log (optionally a ``[start, end)`` window) as a DataFrame sorted by ``ts``."""
    import pandas as pd

    files = _files(source, model)
    if not files:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in BASE_COLUMNS})
    ds = _dataset(files)
    cols = [c for c in columns if c in ds.schema.names] if columns is not None else None
    df = ds.to_table(columns=cols, filter=_filter(start, end)).to_pandas()
    if "ts" in df.columns:
        df = df.sort_values("ts", kind="stable").reset_index(drop=True)
    return df


def inputs_frame(log_df: pd.DataFrame, *, include_outputs: bool = True, only_ok: bool = True) -> pd.DataFrame:
    """Feature columns of a log frame with ``in.`` stripped (``out.`` columns kept as they are)."""
    df = log_df[log_df["outcome"] == "ok"] if only_ok and "outcome" in log_df.columns else log_df
    cols = {c: c[len(INPUT_PREFIX) :] for c in df.columns if c.startswith(INPUT_PREFIX)}
    keep = list(cols)
    if include_outputs:
        keep += [c for c in df.columns if c.startswith(OUTPUT_PREFIX)]
    return df[keep].rename(columns=cols).reset_index(drop=True)
