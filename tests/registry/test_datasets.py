from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bastion.errors import DataError, NotFoundError, RegistryError
from bastion.project import Project


def test_register_dataframe_records_schema_stats_and_digest(any_project: Project, toy_df: pd.DataFrame) -> None:
    dv = any_project.register_dataset(toy_df, name="patients", description="toy")
    assert dv.ref == "patients:1"
    assert dv.rows == 200
    assert [c["name"] for c in dv.schema] == ["age", "income", "city", "label"]
    assert dv.stats["age"]["min"] >= 18 and dv.stats["age"]["max"] <= 89
    assert dv.stats["city"]["categories"] == toy_df["city"].value_counts().sort_index().to_dict()
    assert abs(dv.stats["income"]["mean"] - toy_df["income"].mean()) < 1e-6
    back = any_project.read_dataset("patients:1")
    pd.testing.assert_frame_equal(back, toy_df, check_dtype=False)
    assert any_project.register_dataset(toy_df, name="patients").version == 2


def test_high_cardinality_strings_keep_no_values(project: Project) -> None:
    df = pd.DataFrame({"ssn": [f"123-45-{i:04d}" for i in range(500)]})
    dv = project.register_dataset(df, name="ids")
    assert "categories" not in dv.stats["ssn"]
    assert "123-45" not in str(dv.stats)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "csv.gz"])
def test_register_files(project: Project, toy_df: pd.DataFrame, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"data.{fmt}"
    if fmt == "parquet":
        toy_df.to_parquet(path)
    elif fmt.startswith("csv"):
        toy_df.to_csv(path, index=False)
    else:
        toy_df.to_json(path, orient="records", lines=True)
    dv = project.register_dataset(path, name="f")
    assert dv.rows == 200
    assert len(project.read_dataset(dv.ref)) == 200


def test_register_folder_of_parquet(project: Project, toy_df: pd.DataFrame, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    toy_df.iloc[:100].to_parquet(folder / "a.parquet")
    toy_df.iloc[100:].to_parquet(folder / "b.parquet")
    dv = project.register_dataset(folder, name="parts")
    assert dv.rows == 200 and dv.fmt == "dir-parquet"
    assert len(project.read_dataset("parts:1")) == 200


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda d: d / "missing.parquet", "does not exist"),
        (lambda d: (d / "bad.parquet").write_bytes(b"PAR1garbage") and d / "bad.parquet", "Cannot read"),
        (lambda d: (d / "empty.csv").write_bytes(b"") or d / "empty.csv", "empty"),
        (lambda d: (d / "x.xlsx").write_bytes(b"data") and d / "x.xlsx", "unknown data format"),
    ],
)
def test_bad_data_changes_nothing(project: Project, tmp_path: Path, make, match: str) -> None:  # type: ignore[no-untyped-def]
    before = project.audit.count()
    with pytest.raises(DataError, match=match):
        project.register_dataset(make(tmp_path), name="bad")
    assert project.list_datasets() == []
    assert project.audit.count() == before


def test_truncated_parquet(project: Project, toy_df: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    toy_df.to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError):
        project.register_dataset(path, name="t")


@pytest.mark.parametrize("name", ["", "a b", "../x", "x/y", "-x", "a" * 200])
def test_invalid_names(project: Project, toy_df: pd.DataFrame, name: str) -> None:
    with pytest.raises(RegistryError):
        project.register_dataset(toy_df, name=name)


def test_unknown_reference_says_what_exists(project: Project, toy_df: pd.DataFrame) -> None:
    project.register_dataset(toy_df, name="patients")
    with pytest.raises(NotFoundError, match="Known datasets: patients"):
        project.get_dataset("patiens:1")
    with pytest.raises(NotFoundError, match="versions: 1"):
        project.get_dataset("patients:7")


def test_stored_dataset_corruption_is_detected(project: Project, toy_df: pd.DataFrame) -> None:
    import os

    from bastion.errors import IntegrityError

    dv = project.register_dataset(toy_df, name="p")
    blob = project.blobs.path_of(dv.digest)  # type: ignore[attr-defined]
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-20] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="dataset p:1"):
        project.read_dataset("p:1")
