"""The prediction log: schema, rolling, flush on close, crash recovery, windowed reads."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bastion.errors import DataError
from bastion.monitor.prediction_log import (
    BASE_COLUMNS,
    PredictionLogWriter,
    PredictionRecord,
    _conform,
    _frame,
    _read_frames,
    _rows_to_table,
    inputs_frame,
    iter_prediction_log,
    prediction_log_dir,
    prediction_log_files,
    read_prediction_log,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _rec(i: int, **kw: object) -> PredictionRecord:
    base: dict[str, object] = {
        "request_id": f"r{i}",
        "version": 3,
        "inputs": {"age": 30 + i, "sex": "F" if i % 2 else "M"},
        "outputs": {"label": i % 2, "proba": 0.1 * (i % 10)},
        "key_id": "k1",
        "client": "10.0.0.1",
        "latency_ms": 1.25,
        "ts": T0 + timedelta(minutes=i),
    }
    base.update(kw)
    return PredictionRecord(**base)  # type: ignore[arg-type]


def test_schema_and_roll_by_rows(tmp_path: Path) -> None:
    with PredictionLogWriter(tmp_path, "churn", max_rows=4) as w:
        for i in range(10):
            w.append(_rec(i))
        assert len(w.files_written) == 2  # 8 rows rolled, 2 still buffered
    files = prediction_log_files(tmp_path, "churn")
    assert len(files) == 3
    schema = pq.read_schema(files[0])
    assert schema.names[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert str(schema.field("ts").type) == "timestamp[us, tz=UTC]"
    assert schema.metadata[b"bastion.prediction_log.schema_version"] == b"1"
    assert {"in.age", "in.sex", "out.label", "out.proba"} <= set(schema.names)
    df = read_prediction_log(tmp_path, "churn")
    assert list(df["request_id"]) == [f"r{i}" for i in range(10)]
    assert set(df["model"]) == {"churn"} and set(df["outcome"]) == {"ok"}
    assert not list(tmp_path.glob("predictions/churn/.wal-*"))  # closed writer leaves no WAL


def test_roll_by_age_and_size(tmp_path: Path) -> None:
    w = PredictionLogWriter(tmp_path, "m", max_age_s=0.0)
    w.append(_rec(0))
    assert len(w.files_written) == 1
    w.close()
    w2 = PredictionLogWriter(tmp_path, "m2", max_bytes=10)
    w2.append(_rec(0))
    assert len(w2.files_written) == 1
    assert w2.flush() is None
    w2.close()


def test_refused_requests_have_no_inputs(tmp_path: Path) -> None:
    with PredictionLogWriter(tmp_path, "m") as w:
        w.append(_rec(0))
        w.append({"request_id": "bad", "version": 3, "outcome": "unauthorized", "client": "6.6.6.6",
                  "ts": T0 + timedelta(minutes=1)})
    df = read_prediction_log(tmp_path, "m")
    assert df.loc[df.request_id == "bad", "outcome"].item() == "unauthorized"
    assert df.loc[df.request_id == "bad", "key_id"].isna().item()
    feats = inputs_frame(df)
    assert list(feats.columns) == ["age", "sex", "out.label", "out.proba"] and len(feats) == 1


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"outcome": "weird"}, "outcome must be one of"),
        ({"ts": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_records_refused(tmp_path: Path, kw: dict[str, object], match: str) -> None:
    with PredictionLogWriter(tmp_path, "m") as w, pytest.raises(DataError, match=match):
        w.append(_rec(0, **kw))


def test_bad_model_name_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a valid"):
        prediction_log_dir(tmp_path, "../etc")


def test_orphaned_wal_of_a_dead_writer_is_recovered(tmp_path: Path) -> None:
    d = prediction_log_dir(tmp_path, "m")
    d.mkdir(parents=True)
    import socket

    dead_pid = 2**22 + 12345  # above pid_max on Linux: no such process
    wal = d / f".wal-{socket.gethostname()}-{dead_pid}-deadbeef.jsonl"
    rows = [_rec(i).to_row("m") for i in range(3)]
    wal.write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"torn", encoding="utf-8")
    with PredictionLogWriter(tmp_path, "m"):
        pass
    assert not wal.exists()
    df = read_prediction_log(tmp_path, "m")
    assert list(df["request_id"]) == ["r0", "r1", "r2"]


def test_buffered_rows_survive_in_the_wal_until_rolled(tmp_path: Path) -> None:
    w = PredictionLogWriter(tmp_path, "m")
    w.append(_rec(0))
    wal = next(prediction_log_dir(tmp_path, "m").glob(".wal-*.arrows"))
    tables, torn = _read_frames(wal)
    assert not torn and tables[0].column("request_id").to_pylist() == ["r0"]
    w.close()


def _dead_wal(tmp_path: Path, suffix: str) -> Path:
    import socket

    d = prediction_log_dir(tmp_path, "m")
    d.mkdir(parents=True, exist_ok=True)
    dead_pid = 2**22 + 12345  # above pid_max on Linux: no such process
    return d / f".wal-{socket.gethostname()}-{dead_pid}-deadbeef{suffix}"


def test_orphaned_columnar_wal_is_recovered_once_without_its_torn_tail(tmp_path: Path) -> None:
    wal = _dead_wal(tmp_path, ".arrows")
    frames = [_frame(_conform(_rows_to_table([_rec(i).to_row("m") for i in range(j, j + 2)]))) for j in (0, 2)]
    wal.write_bytes(frames[0] + frames[1] + frames[1][:-7])  # the last write was cut short by the crash
    with PredictionLogWriter(tmp_path, "m") as w:
        assert [p.name.endswith("-deadbeef-recovered.parquet") for p in w.files_written] == [True]
    assert not wal.exists()
    assert list(read_prediction_log(tmp_path, "m")["request_id"]) == ["r0", "r1", "r2", "r3"]
    # a recovery cut short after its Parquet file was written does not write the rows twice
    wal.write_bytes(frames[0])
    with PredictionLogWriter(tmp_path, "m"):
        pass
    assert not wal.exists() and len(read_prediction_log(tmp_path, "m")) == 4


@pytest.mark.parametrize("damage", [b"XXXX", b"flip"])
def test_a_damaged_frame_ends_recovery_at_the_last_good_one(tmp_path: Path, damage: bytes) -> None:
    wal = _dead_wal(tmp_path, ".arrows")
    good, bad = (_frame(_conform(_rows_to_table([_rec(i).to_row("m")]))) for i in (0, 1))
    bad = damage + bad[4:] if damage == b"XXXX" else bad[:-1] + bytes([bad[-1] ^ 1])
    wal.write_bytes(good + bad)
    assert [t.num_rows for t in _read_frames(wal)[0]] == [1] and _read_frames(wal)[1]


def _checked_frame(payload: bytes) -> bytes:
    """A frame whose length and checksum hold, whatever the payload (what a crafted file can do)."""
    import struct
    import zlib

    return struct.pack("<4sII", b"BPL1", len(payload), zlib.crc32(payload)) + payload


def _arrow_payload(table: pa.Table) -> bytes:
    return _frame(table)[12:]


_GOOD_ROWS = [_rec(0).to_row("m")]
_HOSTILE_WALS = {
    "not arrow": (".arrows", lambda good: good + _checked_frame(b"garbage that is no IPC stream")),
    "no base columns": (".arrows", lambda good: good + _checked_frame(_arrow_payload(pa.table({"in.x": [1]})))),
    "bad outcome": (".arrows", lambda good: good + _checked_frame(_arrow_payload(pa.table({
        **{c: pa.array([None] * 1, type=t) for c, t in zip(BASE_COLUMNS, [pa.string(), pa.timestamp("us", tz="UTC"),
           pa.string(), pa.int64(), pa.string(), pa.string(), pa.string(), pa.float64()], strict=True)},
        "outcome": ["pwned"]})))),
    "bad type": (".arrows", lambda good: good + _checked_frame(_arrow_payload(
        pa.table({c: ["x"] for c in BASE_COLUMNS})))),
    "legacy list line": (".jsonl", lambda good: json.dumps(_GOOD_ROWS[0]).encode() + b"\n[1, 2]\n"),
    "legacy bad time": (".jsonl", lambda good: json.dumps(_GOOD_ROWS[0]).encode() + b"\n"
                        + json.dumps({**_GOOD_ROWS[0], "request_id": "x", "ts": "not a time"}).encode() + b"\n"),
    "legacy bad version": (".jsonl", lambda good: json.dumps(_GOOD_ROWS[0]).encode() + b"\n"
                           + json.dumps({**_GOOD_ROWS[0], "request_id": "x", "version": "v"}).encode() + b"\n"),
    "legacy not utf-8": (".jsonl", lambda good: json.dumps(_GOOD_ROWS[0]).encode() + b"\n\xff\xfe{\n"),
}


@pytest.mark.parametrize("kind", sorted(_HOSTILE_WALS))
def test_a_crafted_or_damaged_wal_never_stops_a_writer_from_opening(tmp_path: Path, kind: str) -> None:
    """Recovery runs when every writer (the server's shipper included) opens: a write-ahead log whose
    checksum holds but whose content is no log batch keeps the rows before the damage, injects nothing,
    and is gone afterwards, instead of failing every later open."""
    suffix, build = _HOSTILE_WALS[kind]
    wal = _dead_wal(tmp_path, suffix)
    wal.write_bytes(build(_frame(_conform(_rows_to_table(_GOOD_ROWS)))))
    with PredictionLogWriter(tmp_path, "m"):
        pass
    assert not wal.exists()
    df = read_prediction_log(tmp_path, "m")
    assert list(df["request_id"]) == ["r0"] and set(df["outcome"]) == {"ok"}
    with PredictionLogWriter(tmp_path, "m"):  # and the next writer opens too
        pass


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "other user"])
def test_a_wal_that_is_not_our_regular_file_is_left_alone(tmp_path: Path, kind: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO would block recovery (and every writer waiting on its lock) forever, a symlink could point at
    /dev/zero or another user's file, another user's file could inject rows: none is read."""
    import threading

    wal = _dead_wal(tmp_path, ".arrows")
    if kind == "fifo":
        os.mkfifo(wal)
    elif kind == "symlink":
        target = tmp_path / "elsewhere.arrows"
        target.write_bytes(_frame(_conform(_rows_to_table(_GOOD_ROWS))))
        wal.symlink_to(target)
    elif kind == "directory":
        wal.mkdir()
    else:
        wal.write_bytes(_frame(_conform(_rows_to_table(_GOOD_ROWS))))
        owner = wal.stat().st_uid
        monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # as if another user had written it
    opened: list[PredictionLogWriter] = []
    t = threading.Thread(target=lambda: opened.append(PredictionLogWriter(tmp_path, "m")), daemon=True)
    t.start()
    t.join(10)
    assert opened, "opening the writer hung on the write-ahead log"
    opened[0].close()
    assert os.path.lexists(wal)
    assert read_prediction_log(tmp_path, "m").empty


def test_writers_opening_together_recover_an_orphan_exactly_once(tmp_path: Path) -> None:
    import threading

    wal = _dead_wal(tmp_path, ".arrows")
    wal.write_bytes(_frame(_conform(_rows_to_table([_rec(i).to_row("m") for i in range(3)]))))
    errors: list[BaseException] = []
    writers: list[PredictionLogWriter] = []

    def open_one() -> None:
        try:
            writers.append(PredictionLogWriter(tmp_path, "m"))
        except BaseException as e:  # pragma: no cover - the failure this test looks for
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.close()
    assert errors == [] and len(writers) == 4
    assert list(read_prediction_log(tmp_path, "m")["request_id"]) == ["r0", "r1", "r2"]


def test_windowed_and_streamed_reads(tmp_path: Path) -> None:
    with PredictionLogWriter(tmp_path, "m", max_rows=7) as w:
        for i in range(30):
            w.append(_rec(i))
    df = read_prediction_log(tmp_path, "m", start=T0 + timedelta(minutes=10), end=T0 + timedelta(minutes=20))
    assert list(df["request_id"]) == [f"r{i}" for i in range(10, 20)]
    n = sum(b.num_rows for b in iter_prediction_log(tmp_path, "m", batch_size=4, columns=["request_id", "in.age"]))
    assert n == 30
    files = [str(p) for p in prediction_log_files(tmp_path, "m")]
    assert len(read_prediction_log(files)) == 30  # plain paths, no project needed
    with pytest.raises(DataError, match="timezone-aware"):
        read_prediction_log(tmp_path, "m", start=datetime(2026, 1, 1))
    assert read_prediction_log(tmp_path, "nothing-logged").empty


def test_closed_writer_refuses_appends(tmp_path: Path) -> None:
    w = PredictionLogWriter(tmp_path, "m")
    w.close()
    w.close()  # idempotent
    with pytest.raises(DataError, match="closed"):
        w.append(_rec(0))
    assert os.listdir(prediction_log_dir(tmp_path, "m")) == []


def test_extend_writes_a_batch_through_the_wal(tmp_path: Path) -> None:
    w = PredictionLogWriter(tmp_path, "m", max_rows=5)
    w.extend([_rec(i) for i in range(3)])
    wal = next(prediction_log_dir(tmp_path, "m").glob(".wal-*.arrows"))
    tables, _ = _read_frames(wal)
    assert [t.column("request_id").to_pylist() for t in tables] == [["r0", "r1", "r2"]]  # one frame
    w.extend([])  # nothing to write: no-op
    w.extend([_rec(i) for i in range(3, 7)])  # crosses max_rows: rolled once
    assert len(w.files_written) == 1
    w.close()
    with pytest.raises(DataError, match="closed"):
        w.extend([_rec(9)])
    assert list(read_prediction_log(tmp_path, "m")["request_id"]) == [f"r{i}" for i in range(7)]


def test_append_table_round_trips_every_field(tmp_path: Path) -> None:
    ts = [T0 + timedelta(seconds=i) for i in range(3)]
    table = pa.table({
        "request_id": ["a", "a", "b"], "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        "version": pa.array([2, 2, 3], type=pa.int32()),  # widened to int64
        "key_id": ["k1", "k1", None], "outcome": ["ok", "ok", "invalid"], "latency_ms": [1.5, 1.5, 0.25],
        "in.b": [True, False, None], "in.age": [30, 41, None], "in.city": ["x", "y", None],
        "out.label": [1, 0, None], "out.proba": [0.75, 0.25, None],
    })
    with PredictionLogWriter(tmp_path, "m") as w:
        w.append_table(table)
        w.append_table(table.slice(0, 0))  # empty: no-op
    df = read_prediction_log(tmp_path, "m")
    assert list(df.columns) == [*BASE_COLUMNS, "in.age", "in.b", "in.city", "out.label", "out.proba"]
    assert list(df["model"]) == ["m"] * 3 and df["client"].isna().all()
    assert [t.to_pydatetime() for t in df["ts"]] == ts
    assert list(df["version"]) == [2, 2, 3] and list(df["outcome"]) == ["ok", "ok", "invalid"]
    assert df["in.age"].tolist()[:2] == [30, 41] and df["in.city"].tolist()[:2] == ["x", "y"]
    assert df["in.b"].tolist()[:2] == [True, False] and df["out.proba"].tolist()[:2] == [0.75, 0.25]
    schema = pq.read_schema(prediction_log_files(tmp_path, "m")[0])
    assert schema.field("version").type == pa.int64()
    assert schema.metadata[b"bastion.prediction_log.schema_version"] == b"1"


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"request_id": ["a"], "secret": ["x"]}, "must be base columns"),
        ({"request_id": ["a"], "outcome": ["weird"]}, "outcome must be one of"),
        ({"request_id": ["a"], "ts": ["yesterday"]}, "'ts' must be"),
    ],
)
def test_append_table_refuses_bad_batches(tmp_path: Path, columns: dict[str, list[str]], match: str) -> None:
    with PredictionLogWriter(tmp_path, "m") as w, pytest.raises(DataError, match=match):
        w.append_table(pa.table(columns))


def test_batches_that_disagree_on_a_column_type_still_roll(tmp_path: Path) -> None:
    with PredictionLogWriter(tmp_path, "m") as w:
        w.append(_rec(0, inputs={"zip": 12345, "n": 1}))
        w.append(_rec(1, inputs={"zip": "1234A", "n": 2.5}))
    df = read_prediction_log(tmp_path, "m")
    assert list(df["in.zip"]) == ["12345", "1234A"]  # kept as text rather than lost
    assert list(df["in.n"]) == [1.0, 2.5]  # integers widen to floats
