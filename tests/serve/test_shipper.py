"""The prediction-log shipper: compact request records become columnar log rows; protected fields never do."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.monitor.prediction_log import BASE_COLUMNS, read_prediction_log
from bastion.serve import _shipper
from bastion.serve.validation import FeatureSpec, build_input_schema

T = 1_800_000_000.25


def _schema() -> tuple[tuple[str, int, str], ...]:
    specs = [FeatureSpec("age", "integer"), FeatureSpec("email", "string", sensitive=True),
             FeatureSpec("score", "number", nullable=True), FeatureSpec("city", "string")]
    return build_input_schema(specs, model_name="m").log_columns


def test_log_columns_leave_out_protected_fields() -> None:
    assert _schema() == (("in.age", 0, "integer"), ("in.score", 2, "number"), ("in.city", 3, "string"))


def test_row_tuples_become_typed_columns_and_protected_values_are_never_read(tmp_path: Path) -> None:
    cols = _schema()
    batch = [
        ("r1", T, 3, "key:a", "ok", 1.5, cols,
         [(41, "x@example.org", 0.5, "Oslo"), (42, "y@example.org", None, "Rome")], [1, 0], [0.9, 0.1]),
        ("r2", T + 1, 3, None, "unauthorized", 0.1, cols, None, None, None),
        ("r3", T + 2, 3, "key:a", "weird-outcome", 0.2, cols, None, None, None),
    ]
    tables = _shipper.to_tables(batch)
    from bastion.monitor.prediction_log import PredictionLogWriter

    with PredictionLogWriter(tmp_path, "m") as w:
        for t in tables:
            w.append_table(t)
    df = read_prediction_log(tmp_path, "m")
    assert list(df.columns) == [*BASE_COLUMNS, "in.age", "in.city", "in.score", "out.label", "out.proba"]
    assert list(df["request_id"]) == ["r1", "r1", "r2", "r3"]
    assert list(df["outcome"]) == ["ok", "ok", "unauthorized", "error"]
    assert df["ts"].iloc[0].timestamp() == T and df["ts"].iloc[2].timestamp() == T + 1
    assert df["in.age"].tolist()[:2] == [41, 42]
    assert [str(t.schema.field(c).type) for t in tables[:1] for c in ("in.age", "in.score", "in.city")] == [
        "int64", "double", "string"]
    assert df["in.city"].tolist()[:2] == ["Oslo", "Rome"]
    assert df["in.score"].iloc[0] == 0.5 and np.isnan(df["in.score"].iloc[1])
    assert df["out.label"].tolist()[:2] == [1, 0] and df["out.proba"].tolist()[:2] == [0.9, 0.1]
    assert list(df["key_id"].iloc[:2]) == ["key:a", "key:a"] and pd.isna(df["key_id"].iloc[2])
    assert list(df["latency_ms"]) == [1.5, 1.5, 0.1, 0.2]
    assert "example.org" not in df.to_json(date_format="iso")


def test_a_numeric_matrix_is_logged_column_by_column() -> None:
    cols = (("in.a", 0, "number"), ("in.n", 2, "integer"))  # column 1 is protected: not listed
    x1 = np.array([[1.5, 99.0, 3.0]])
    x2 = np.array([[2.5, 98.0, 4.0], [3.5, 97.0, 5.0]])
    # as the server sends it (the float64 bytes and the column count), or as an array
    tables = _shipper.to_tables([("a", T, 1, "k", "ok", 1.0, cols, (x1.tobytes(), 3), [1], [0.7]),
                                 ("b", T, 1, "k", "ok", 1.0, cols, x2, [0, 1], [0.2, 0.6])])
    (t,) = tables
    assert t.column("in.a").to_pylist() == [1.5, 2.5, 3.5]
    assert t.column("in.n").to_pylist() == [3, 4, 5] and str(t.schema.field("in.n").type) == "int64"
    assert t.column("request_id").to_pylist() == ["a", "b", "b"]
    assert t.column("out.proba").to_pylist() == [0.7, 0.2, 0.6]
    assert 99.0 not in [v for c in t.columns for v in c.to_pylist()]


def test_a_hot_reload_mid_batch_gives_one_table_per_input_layout() -> None:
    old = (("in.a", 0, "number"),)
    new = (("in.a", 0, "number"), ("in.b", 1, "number"))
    tables = _shipper.to_tables([("a", T, 1, "k", "ok", 1.0, old, np.array([[1.0]]), [1], None),
                                 ("b", T, 2, "k", "ok", 1.0, new, np.array([[1.0, 2.0]]), [0], None)])
    assert [t.column_names[-2:] for t in tables] == [["in.a", "out.label"], ["in.b", "out.label"]]
    assert all("out.proba" not in t.column_names for t in tables)


def test_the_shipper_outlives_sigterm_and_flushes_on_eof(tmp_path: Path) -> None:
    """`kill -TERM` to the server's process group must not lose the batches the server still sends."""
    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_shipper.main, args=(reader, str(tmp_path), "m"))
    proc.start()
    reader.close()
    cols = (("in.a", 0, "number"),)
    writer.send_bytes(pickle.dumps([("a", T, 1, "k", "ok", 1.0, cols, np.array([[1.0]]), [1], None)]))
    deadline = time.monotonic() + 60
    wal_dir = tmp_path / "predictions" / "m"
    while not any(wal_dir.glob(".wal-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGTERM)
    writer.send_bytes(pickle.dumps([("b", T, 1, "k", "ok", 1.0, cols, np.array([[2.0]]), [0], None)]))
    writer.close()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert list(read_prediction_log(tmp_path, "m")["in.a"]) == [1.0, 2.0]
    assert not list(wal_dir.glob(".wal-*"))


@pytest.mark.parametrize("bad", [[("r", T, 1, None, "ok", 1.0, (("in.a", 0, "number"),), [], [], None)]])
def test_an_ok_record_without_rows_is_logged_as_a_request(bad: list[_shipper.Compact]) -> None:
    (t,) = _shipper.to_tables(bad)
    assert t.column("request_id").to_pylist() == ["r"] and "in.a" not in t.column_names


def test_the_server_side_sink_ships_batches_without_a_thread_and_survives_a_dead_shipper(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The event loop pickles each batch and writes it to a non-blocking pipe; close() sends the rest and
    the shipper flushes. If the shipper dies, the server only logs it and keeps going."""
    import asyncio
    import threading

    from bastion.serve.app import _PredictionSink

    cols = (("in.a", 0, "number"),)

    def rec(i: int) -> _shipper.Compact:
        return (f"r{i}", T + i, 1, "k", "ok", 1.0, cols, (np.array([[float(i)]]).tobytes(), 1), [i % 2], [0.5])

    async def run(n: int, kill: bool) -> None:
        before = threading.active_count()
        sink = _PredictionSink(tmp_path, "m", every_s=0.01)
        assert threading.active_count() == before  # no hand-over thread
        for i in range(n):
            sink.put(rec(i))
            if i % 50 == 0:
                await asyncio.sleep(0.02)  # let the timer hand batches over
        if kill:
            sink.proc.kill()
            sink.proc.join()
            for i in range(n, n + 200):
                sink.put(rec(i))
                await asyncio.sleep(0.001)
        sink.close()

    asyncio.run(run(500, False))
    assert list(read_prediction_log(tmp_path, "m")["in.a"]) == [float(i) for i in range(500)]
    asyncio.run(run(10, True))
    assert "prediction log shipper is gone" in caplog.text


def test_an_integer_past_int64_is_logged_not_fatal() -> None:
    """An integer field without a recorded range accepts any JSON integer; the server's float matrix then
    holds e.g. 1e23, which int64 cannot: the column keeps the float rather than failing the batch."""
    cols = (("in.n", 0, "integer"), ("in.a", 1, "number"))
    x = np.array([[1e23, 1.5], [7.0, 2.5]])
    (t,) = _shipper.to_tables([("r", T, 1, "k", "ok", 1.0, cols, (x.tobytes(), 2), [1, 0], None)])
    assert t.column("in.n").to_pylist() == [1e23, 7.0] and t.column("in.a").to_pylist() == [1.5, 2.5]


def test_a_batch_the_log_cannot_hold_is_dropped_and_logging_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch that fails to convert (here: two matrices of different widths under one layout) used to end
    the shipper, and with it the prediction log for the rest of the server's life."""
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # main() runs in this process: keep its settings
    monkeypatch.setattr(os, "nice", lambda n: 0)
    monkeypatch.setattr(os, "sched_setscheduler", lambda *a: None, raising=False)
    reader, writer = multiprocessing.Pipe(duplex=False)
    cols = (("in.a", 0, "number"),)
    writer.send_bytes(pickle.dumps([("bad1", T, 1, "k", "ok", 1.0, cols, np.array([[1.0]]), [1], None),
                                    ("bad2", T, 1, "k", "ok", 1.0, cols, np.array([[1.0, 2.0]]), [1], None)]))
    reader_poll = reader.poll
    monkeypatch.setattr(reader, "poll", lambda t=0: False, raising=False)  # one batch per read
    writer.send_bytes(pickle.dumps([("good", T, 1, "k", "ok", 1.0, cols, np.array([[3.0]]), [0], None)]))
    writer.close()
    assert reader_poll(0)
    with caplog.at_level("ERROR", logger="bastion.serve"):
        _shipper.main(reader, str(tmp_path), "m")
    assert list(read_prediction_log(tmp_path, "m")["request_id"]) == ["good"]
    assert "dropped a batch of 2 request records" in caplog.text
