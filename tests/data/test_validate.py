from __future__ import annotations

import pandas as pd
import pytest

from bastion.data.validate import Contract, validate

SCHEMA = [
    {"name": "age", "type": "int64", "nullable": True},
    {"name": "city", "type": "string", "nullable": True},
    {"name": "income", "type": "double", "nullable": False},
]
STATS = {
    "age": {"count": 100, "nulls": 0, "min": 18, "max": 90},
    "city": {"count": 95, "nulls": 5, "categories": ["Paris", "Rome"]},
    "income": {"count": 100, "nulls": 0, "min": 0.0, "max": 1e6},
}


def _good():
    return pd.DataFrame({"age": [20, 30, 40], "city": ["Paris", "Rome", None], "income": [1.0, 2.0, 3.0]})


def test_clean_data_passes():
    rep = validate(_good(), Contract.from_schema(SCHEMA, STATS, null_rate_jump=0.5))
    assert rep.ok and rep.rows == 3


@pytest.mark.parametrize(
    ("change", "check", "column"),
    [
        (lambda d: d.drop(columns=["city"]), "missing_column", "city"),
        (lambda d: d.assign(extra=1), "new_column", "extra"),
        (lambda d: d.assign(age=d["age"].astype(float)), "type_change", "age"),
        (lambda d: d.assign(age=[20, 30, 150]), "out_of_range", "age"),
        (lambda d: d.assign(city=["Paris", "Lyon", "Oslo"]), "new_category", "city"),
        (lambda d: d.assign(city=[None, None, "Rome"]), "null_rate", "city"),
        (lambda d: d.assign(income=[1.0, None, 3.0]), "nullability", "income"),
    ],
)
def test_violations(change, check, column):
    rep = validate(change(_good()), Contract.from_schema(SCHEMA, STATS, null_rate_jump=0.5))
    assert not rep.ok
    assert (column, check) in {(v.column, v.check) for v in rep.violations}


def test_new_categories_masked_in_report():
    rep = validate(_good().assign(city=["Paris", "Secretville", None]), Contract.from_schema(SCHEMA, STATS))
    assert "Secretville" not in str(rep.to_dict())


def test_against_registered_version(project, tmp_path):
    dv = project.register_dataset(_good(), name="people")
    live = tmp_path / "live.parquet"
    _good().assign(age=[20, 30, 400]).to_parquet(live)
    rep = validate(live, Contract.from_version(project.get_dataset(dv.ref), null_rate_jump=0.5))
    assert [v.check for v in rep.violations] == ["out_of_range"]


@pytest.mark.parametrize("as_table", [False, True])
def test_nan_is_missing_not_a_value_that_passes_every_check(as_table, tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    # A file written by Arrow keeps NaN as a value (not a null): no bound catches it, no null count saw it.
    t = pa.table({"age": pa.array([20, 30, 40]), "city": pa.array(["Paris", "Rome", None]),
                  "income": pa.array([1.0, np.nan, 3.0], from_pandas=False)})
    assert t.column("income").null_count == 0
    path = tmp_path / "nan.parquet"
    pq.write_table(t, path)
    rep = validate(t if as_table else path, Contract.from_schema(SCHEMA, STATS, null_rate_jump=0.5))
    assert [(v.column, v.check, v.count) for v in rep.violations] == [("income", "nullability", 1)]
    assert "1 NaN" in rep.violations[0].observed
