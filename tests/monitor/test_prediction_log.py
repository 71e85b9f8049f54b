"""The prediction log: schema, rolling, flush on close, crash recovery, windowed reads."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bastion.errors import DataError
from bastion.monitor.prediction_log import (
    BASE_COLUMNS,
    PredictionLogWriter,
    PredictionRecord,
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
    wal = next(prediction_log_dir(tmp_path, "m").glob(".wal-*.jsonl"))
    assert json.loads(wal.read_text().splitlines()[0])["request_id"] == "r0"
    w.close()


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
    wal = next(prediction_log_dir(tmp_path, "m").glob(".wal-*.jsonl"))
    assert [json.loads(ln)["request_id"] for ln in wal.read_text().splitlines()] == ["r0", "r1", "r2"]
    w.extend([])  # nothing to write: no-op
    w.extend([_rec(i) for i in range(3, 7)])  # crosses max_rows: rolled once
    assert len(w.files_written) == 1
    w.close()
    with pytest.raises(DataError, match="closed"):
        w.extend([_rec(9)])
    assert list(read_prediction_log(tmp_path, "m")["request_id"]) == [f"r{i}" for i in range(7)]
