"""Streaming drift inputs: every input kind read one column chunk at a time, memory that does not grow
with the number of columns, and results equal however the rows are chunked."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import bastion.monitor._source as source_mod
from bastion.errors import DataError
from bastion.monitor._source import TableSource
from bastion.monitor.drift.numeric import MERGE_BLOCK
from bastion.monitor.drift.run import compute_drift


def _frames(rows: int, n_num: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(n_num)})
    cur = pd.DataFrame({f"x{i}": rng.normal(0.05 * i, 1.0, size=rows) for i in range(n_num)})
    return ref, cur


def _traced_peak(ref: Any, cur: Any) -> int:
    tracemalloc.start()
    try:
        compute_drift(ref, cur)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("as_parquet", [False, True])
def test_working_memory_does_not_grow_with_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   as_parquet: bool) -> None:
    # One thread: the bound is then one numeric column (both sides) at a time; with k threads it is k columns.
    monkeypatch.setenv("BASTION_MONITOR_THREADS", "1")
    rows = 200_000
    one_column_both_sides = 2 * rows * 8
    peaks = {}
    for n in (5, 50):
        ref, cur = _frames(rows, n)
        if as_parquet:
            ref.to_parquet(tmp_path / f"r{n}.parquet")
            cur.to_parquet(tmp_path / f"c{n}.parquet")
            del ref, cur
            peaks[n] = _traced_peak(str(tmp_path / f"r{n}.parquet"), str(tmp_path / f"c{n}.parquet"))
        else:
            peaks[n] = _traced_peak(ref, cur)
    # Ten times the columns, (almost) the same peak: nothing is held per column or for the whole table.
    assert peaks[50] < 1.2 * peaks[5]
    # ... and that peak is one column's sorted copies plus the merge block, below the 5-column data itself.
    assert peaks[5] < 2 * one_column_both_sides + 64 * MERGE_BLOCK < 5 * one_column_both_sides


def _table_sources(tmp_path: Path, df: pd.DataFrame) -> dict[str, TableSource]:
    df.to_parquet(tmp_path / "t.parquet")
    return {
        "frame": TableSource.from_any(df),
        "table": TableSource.from_any(pa.Table.from_pandas(df, preserve_index=False)),
        "parquet": TableSource.from_any(tmp_path / "t.parquet"),
    }


def test_columns_stream_in_bounded_chunks_for_every_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({
        "num": rng.normal(size=2500),
        "cat": rng.choice(["a", "b", None], size=2500).astype(object),
        "cat3": pd.Series(rng.choice(["u", "v"], size=2500), dtype="category"),
    })
    for kind, src in _table_sources(tmp_path, df).items():
        for col in df.columns:
            chunks = list(src.iter_column(col, chunk_rows=1000))
            assert max(len(c) for c in chunks) <= 1000, kind
            assert sum(len(c) for c in chunks) == 2500, kind
        frames = list(src.iter_frames(["num", "cat"], chunk_rows=1000))
        assert [len(f) for f in frames] == [1000, 1000, 500] if kind != "parquet" else sum(map(len, frames)) == 2500
        assert list(frames[0].columns) == ["num", "cat"]


def test_results_equal_however_rows_are_chunked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    n = 5000
    ref = pd.DataFrame({"a": np.round(rng.normal(size=n), 1), "b": rng.choice(["x", "y", "z"], n),
                        "c": rng.integers(0, 4, n)})
    cur = pd.DataFrame({"a": np.round(rng.normal(0.2, 1, n), 1), "b": rng.choice(["x", "y", "new"], n),
                        "c": rng.integers(0, 5, n)})
    whole = compute_drift(ref, cur).to_dict()
    monkeypatch.setattr(source_mod, "CHUNK_ROWS", 333)
    seen: list[int] = []
    original = TableSource.iter_column

    def spy(self: TableSource, name: str, *, chunk_rows: int | None = None) -> Any:
        for chunk in original(self, name, chunk_rows=chunk_rows):
            seen.append(len(chunk))
            yield chunk

    monkeypatch.setattr(TableSource, "iter_column", spy)
    ref.to_parquet(tmp_path / "r.parquet")
    cur.to_parquet(tmp_path / "c.parquet")
    for a, b in ((ref, cur), (str(tmp_path / "r.parquet"), str(tmp_path / "c.parquet"))):
        chunked = compute_drift(a, b).to_dict()
        for d in (whole, chunked):
            d.pop("created", None)
        assert chunked == whole
    assert seen and max(seen) <= 333


def test_filtered_log_source_counts_only_matching_rows(tmp_path: Path) -> None:
    t = pa.table({"in.x": np.arange(100.0), "outcome": ["ok", "invalid"] * 50, "version": [1] * 100})
    pq.write_table(t.slice(0, 60), tmp_path / "a.parquet")
    pq.write_table(t.slice(60), tmp_path / "b.parquet")
    src = TableSource.from_log([tmp_path / "a.parquet", tmp_path / "b.parquet"],
                               filter=pads.field("outcome") == "ok", rename={"in.x": "x"})
    assert src.num_rows == 50
    values = np.concatenate([c.to_numpy() for c in src.iter_column("x", chunk_rows=7)])
    assert values.tolist() == list(np.arange(0.0, 100.0, 2.0))


def test_mixed_object_column_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="one type each"):
        TableSource.from_any(pd.DataFrame({"m": [1, "a", 2.5]}))
