from __future__ import annotations

import hashlib
import os

import pyarrow as pa
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


def test_dask_output_byte_identical_to_local(tmp_path):
    n = 3000
    src = tmp_path / "raw.parquet"
    pq.write_table(
        pa.table(
            {
                "name": [f"Person {i % 97}" for i in range(n)],
                "zip": [f"{(i * 7919) % 100000:05d}" for i in range(n)],
                "phone": [f"+1 555 {i:07d}" for i in range(n)],
                "v": list(range(n)),
            }
        ),
        src,
        row_group_size=700,
    )
    scan = TableScanReport(
        "t",
        (
            ColumnFinding("name", "PERSON", "column", 1, 1),
            ColumnFinding("zip", "US_ZIP", "column", 1, 1),
            ColumnFinding("phone", "PHONE", "column", 1, 1),
            ColumnFinding("v", None, "none", 0, 0),
        ),
        n,
        n,
    )
    ring = Keyring(tmp_path / "dk.json", LocalMasterKey(os.urandom(32), source="t"))
    policy = {"columns": {"phone": {"operator": "hash"}}, "batch_rows": 500}
    local = protect_file(src, tmp_path / "local.parquet", policy=policy, keyring=ring, scan=scan)
    with get_engine("dask", n_workers=2, processes=False) as eng:
        dist = protect_file(
            src, tmp_path / "dask.parquet", policy=policy, keyring=ring, scan=scan, engine=eng
        )
    a = hashlib.sha256((tmp_path / "local.parquet").read_bytes()).hexdigest()
    b = hashlib.sha256((tmp_path / "dask.parquet").read_bytes()).hexdigest()
    assert a == b
    assert local.k_anonymity.to_dict() == dist.k_anonymity.to_dict() and dist.engine == "dask"
