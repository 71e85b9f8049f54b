from __future__ import annotations

import hashlib
import os

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from bastion.crypto.keys import Keyring, LocalMasterKey
from bastion.data.pii.interface import ColumnFinding, TableScanReport
from bastion.data.protect import protect_file
from bastion.engine import LocalEngine, get_engine
from bastion.engine._io import rechunk
from bastion.errors import ConfigError, DataError


def _identity(batch):
    return batch, batch.num_rows


def test_rechunk_exact_sizes():
    schema = pa.schema([("a", pa.int64())])
    parts = [pa.record_batch([pa.array(range(n))], schema=schema) for n in (3, 10, 1, 7)]
    sizes = [b.num_rows for b in rechunk(iter(parts), 4, schema)]
    assert sizes == [4, 4, 4, 4, 4, 1]


def test_local_engine_constant_batches_and_results(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": list(range(1000))}), src, row_group_size=333)
    seen = []
    stats = LocalEngine().map_batches(
        src, _identity, tmp_path / "out.parquet", batch_rows=100, on_result=seen.append
    )
    assert stats.rows == 1000 and seen == [100] * 10
    assert pq.read_table(tmp_path / "out.parquet").column("a").to_pylist() == list(range(1000))


def test_unknown_engine():
    with pytest.raises(ConfigError, match="'local' or 'dask'"):
        get_engine("spark")


def test_empty_table_is_an_error(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": pa.array([], pa.int64())}), src)
    with pytest.raises(DataError, match="no rows"):
        LocalEngine().map_batches(src, _identity, tmp_path / "out.parquet")


def _people(n: int) -> pa.Table:
    return pa.table(
        {
            "name": [f"Person {i % 97}" for i in range(n)],
            "zip": [f"{(i * 7919) % 100000:05d}" for i in range(n)],
            "phone": [f"+1 555 {i:07d}" for i in range(n)],
            # every fifth note holds a quoted newline once written as CSV
            "note": [f"line {i}\nnext" if i % 5 == 0 else f"n{i}" for i in range(n)],
            "v": list(range(n)),
        }
    )


def _protect_on_both(src, tmp_path, eng, n):
    """Protect ``src`` with the local engine and with ``eng``; returns both reports and both outputs' bytes."""
    scan = TableScanReport(
        "t",
        (
            ColumnFinding("name", "PERSON", "column", 1, 1),
            ColumnFinding("zip", "US_ZIP", "column", 1, 1),
            ColumnFinding("phone", "PHONE", "column", 1, 1),
            ColumnFinding("note", None, "none", 0, 0),
            ColumnFinding("v", None, "none", 0, 0),
        ),
        n,
        n,
    )
    ring = Keyring(tmp_path / "dk.json", LocalMasterKey(os.urandom(32), source="t"))
    policy = {"columns": {"phone": {"operator": "hash"}}, "batch_rows": 500}
    local = protect_file(src, tmp_path / "local.parquet", policy=policy, keyring=ring, scan=scan)
    dist = protect_file(src, tmp_path / "dask.parquet", policy=policy, keyring=ring, scan=scan, engine=eng)
    return local, dist, (tmp_path / "local.parquet").read_bytes(), (tmp_path / "dask.parquet").read_bytes()


@pytest.fixture(scope="module")
def dask_engine():
    with get_engine("dask", n_workers=2, processes=False) as eng:
        yield eng


def test_dask_output_byte_identical_to_local(tmp_path, dask_engine):
    n = 3000
    src = tmp_path / "raw.parquet"
    pq.write_table(_people(n), src, row_group_size=700)
    local, dist, a, b = _protect_on_both(src, tmp_path, dask_engine, n)
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()
    assert local.k_anonymity.to_dict() == dist.k_anonymity.to_dict() and dist.engine == "dask"


@pytest.mark.parametrize("name", ["raw.csv", "raw.csv.gz"])
def test_dask_csv_byte_identical_to_local(tmp_path, dask_engine, name):
    n = 3000  # 6 batches of 500: more than the engine's in-flight window of 5
    src = tmp_path / name
    with pa.CompressedOutputStream(src, "gzip") if name.endswith(".gz") else pa.OSFile(str(src), "wb") as fh:
        pacsv.write_csv(_people(n), fh)
    local, dist, a, b = _protect_on_both(src, tmp_path, dask_engine, n)
    assert a == b
    assert local.k_anonymity.to_dict() == dist.k_anonymity.to_dict() and dist.engine == "dask"
    out = pq.read_table(tmp_path / "dask.parquet")
    assert out.num_rows == n and out.column("note")[0].as_py() == "line 0\nnext"
    assert out.column("v").to_pylist() == list(range(n))


def test_dask_csv_quoted_newlines_across_read_blocks(tmp_path, dask_engine):
    # > 4 MiB, the CSV reader's block size: some quoted newline falls on a block boundary
    n = 60_000
    src = tmp_path / "big.csv"
    pacsv.write_csv(pa.table({"v": list(range(n)), "note": [f"{'x' * 60}\n{i}" for i in range(n)]}), src)
    assert src.stat().st_size > 1 << 22
    progress: list[tuple[int, int]] = []
    seen: list[int] = []
    local = LocalEngine().map_batches(src, _identity, tmp_path / "local.parquet", batch_rows=7000)
    dist = dask_engine.map_batches(
        src,
        _identity,
        tmp_path / "dask.parquet",
        batch_rows=7000,
        on_result=seen.append,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert (tmp_path / "local.parquet").read_bytes() == (tmp_path / "dask.parquet").read_bytes()
    assert local.rows == dist.rows == n and local.batches == dist.batches == 9
    assert seen == [7000] * 8 + [4000]
    assert progress[-1] == (n, 0)  # CSV row count is unknown: total 0, as the local engine reports


def _mixed_after_first_block(path):
    # the first block infers int64; a later one breaks it, after batches have gone to the workers
    path.write_bytes(b"v\n" + b"1234567\n" * 700_000 + b"oops\n")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"a,b\n", "no rows"),
        (b"a,b\n1,2\n3\n", "not a readable CSV"),
        (_mixed_after_first_block, "Reading .* failed"),
    ],
    ids=["zero-bytes", "header-only", "ragged", "mixed-types-mid-file"],
)
def test_dask_bad_csv_same_error_as_local(tmp_path, dask_engine, content, match):
    src = tmp_path / "in.csv"
    if callable(content):
        content(src)
    else:
        src.write_bytes(content)
    errors = []
    for name, eng in (("local", LocalEngine()), ("dask", dask_engine)):
        with pytest.raises(DataError, match=match) as info:
            eng.map_batches(src, _identity, tmp_path / f"{name}.parquet", batch_rows=100_000)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # nothing half-written


def _fail_on_third(batch):
    if batch.column("v")[0].as_py() >= 200:
        raise ValueError("boom in batch")
    return batch, batch.num_rows


def test_dask_csv_failing_batch_leaves_no_output(tmp_path, dask_engine):
    src = tmp_path / "in.csv"
    pacsv.write_csv(pa.table({"v": list(range(1000))}), src)
    with pytest.raises(ValueError, match="boom in batch"):
        dask_engine.map_batches(src, _fail_on_third, tmp_path / "out.parquet", batch_rows=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


# ------------------------------------------------------------------ worker processes


def _square_or_fail(batch):
    values = batch.column("a").to_pylist()
    if -666 in values:
        raise DataError("batch holds the poisoned value -666")
    out = pa.record_batch([pa.array([v * v for v in values], pa.int64())], names=["a"])
    return out, (os.getpid(), values[0])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_worker_processes_keep_order_results_and_bytes(tmp_path, fmt):
    src = tmp_path / f"in.{fmt}"
    table = pa.table({"a": list(range(2000))})
    if fmt == "parquet":
        pq.write_table(table, src, row_group_size=300)
    else:
        pacsv.write_csv(table, src)
    runs = {}
    for workers in (1, 2):
        seen, ticks = [], []
        out = tmp_path / f"out{workers}.parquet"
        stats = LocalEngine(workers).map_batches(
            src, _square_or_fail, out, batch_rows=100, on_result=seen.append, progress=lambda d, t: ticks.append(d)
        )
        assert stats.rows == 2000 and stats.batches == 20
        assert [first for _, first in seen] == list(range(0, 2000, 100))  # partial results in input order
        assert ticks == list(range(100, 2001, 100))
        runs[workers] = (hashlib.sha256(out.read_bytes()).hexdigest(), {pid for pid, _ in seen})
    assert runs[1][0] == runs[2][0]  # byte-identical output
    assert runs[1][1] == {os.getpid()}
    assert os.getpid() not in runs[2][1] and len(runs[2][1]) >= 1  # really ran in worker processes


def test_worker_failure_is_the_same_error_and_leaves_no_output(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": [-666 if i == 1234 else i for i in range(2000)]}), src)
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match="poisoned value -666"):
        LocalEngine(2).map_batches(src, _square_or_fail, out, batch_rows=100)
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_a_few_batches_stay_in_process(tmp_path):
    from bastion.engine.local import MIN_PARALLEL_BATCHES

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": list(range(100 * (MIN_PARALLEL_BATCHES - 1)))}), src)
    seen = []
    LocalEngine(2).map_batches(src, _square_or_fail, tmp_path / "o.parquet", batch_rows=100, on_result=seen.append)
    assert {pid for pid, _ in seen} == {os.getpid()} and len(seen) == MIN_PARALLEL_BATCHES - 1


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(ConfigError, match="at least 1"):
        LocalEngine(workers)


def test_get_engine_defaults_to_every_available_core():
    from bastion.engine import available_cores

    assert get_engine("local").workers == available_cores() >= 1
    assert get_engine("local", workers=1).workers == 1


def test_parallel_protect_output_decrypts_like_the_serial_one(tmp_path):
    """Tokens are deterministic, so protecting with 1 or 2 workers gives the same token column."""
    src = tmp_path / "raw.parquet"
    pq.write_table(pa.table({"email": [f"user{i % 400}@example.com" for i in range(3000)]}), src)  # 6 batches
    ring = Keyring(tmp_path / "dk.json", LocalMasterKey(os.urandom(32), source="test"))
    scan = TableScanReport("raw", (ColumnFinding("email", "EMAIL", "column", 1, 1),), 0, 0)
    policy = {"columns": {"email": "tokenize"}, "batch_rows": 500}
    tokens = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.parquet"
        protect_file(src, out, policy=policy, keyring=ring, scan=scan, engine=LocalEngine(workers), write_report=False)
        tokens.append(pq.read_table(out).column("email").to_pylist())
    assert tokens[0] == tokens[1] and len(set(tokens[0])) == 400
