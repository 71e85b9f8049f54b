"""`bastion data register --derived-from`: lineage from a training table back to the protected dataset
and the raw file it came from."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest


def test_derived_from_reaches_protected_and_raw(cli, project, project_dir) -> None:
    raw = project_dir / "raw.csv"
    raw.write_text("ssn,age\n123-45-6789,40\n987-65-4321,50\n")
    pd.DataFrame({"age": [40, 50]}).to_parquet(project_dir / "clean.parquet")
    pd.DataFrame({"age": [40]}).to_parquet(project_dir / "train.parquet")
    assert cli("data", "register", "clean.parquet", "--name", "patients").exit_code == 0
    r = cli("data", "register", "train.parquet", "--name", "train", "--derived-from", "patients:1",
            "--derived-from", "raw.csv", "--json")
    assert r.exit_code == 0, r.stderr
    raw_digest = "sha256:" + hashlib.sha256(raw.read_bytes()).hexdigest()
    assert json.loads(r.stdout)["derived_from"] == ["patients:1", raw_digest]
    assert project.get_dataset("train:1").derived_from == ["patients:1", raw_digest]
    [entry] = [e for e in project.audit.entries(action="dataset.register") if e.subject == "train:1"]
    assert entry.details["derived_from"] == ["patients:1", raw_digest]


@pytest.mark.parametrize(
    "parent",
    ["nope:1", "patients:9", "sha256:abc", "sha256:" + "0" * 64 + "\n", "missing-file.csv"],
)
def test_bad_parent_is_refused(cli, project, project_dir, parent: str) -> None:
    pd.DataFrame({"age": [40]}).to_parquet(project_dir / "train.parquet")
    assert cli("data", "register", "train.parquet", "--name", "patients").exit_code == 0
    r = cli("data", "register", "train.parquet", "--name", "train", "--derived-from", parent)
    assert r.exit_code == 2 and "--derived-from" in r.stderr
    assert [d.name for d in project.list_datasets()] == ["patients"]
