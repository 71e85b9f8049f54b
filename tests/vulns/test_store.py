"""The advisory store: offline import of zips, folders and files; idempotent; newer 'modified' wins;
withdrawn records match nothing; non-PyPI records are ignored; each import is audited with its digest."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bastion.errors import DataError
from bastion.store.schema import vuln_advisories, vuln_affected
from bastion.vulns import advisory_count, import_advisories
from tests.vulns.conftest import osv, write


def _stored(project: Any) -> dict[str, Any]:
    with project.db.read() as conn:
        heads = {r.id: r for r in conn.execute(select(vuln_advisories))}
        rows = list(conn.execute(select(vuln_affected)))
    return {"heads": heads, "affected": rows}


def test_import_zip_folder_and_file(project: Any, tmp_path: Path) -> None:
    z = tmp_path / "osv-PyPI.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(3):
            zf.writestr(f"PYSEC-2026-{i}.json", json.dumps(osv(f"PYSEC-2026-{i}", "numpy", versions=["1.0"])))
        zf.writestr("README.txt", "not json, not read")
    folder = tmp_path / "osv"
    (folder / "sub").mkdir(parents=True)
    write(folder / "sub" / "a.json", osv("GHSA-f-1", "torch", versions=["2.0"]))
    write(folder / "b.json", osv("GHSA-f-2", "torch", versions=["2.1"]))
    single = write(tmp_path / "list.json", osv("GHSA-l-1", versions=["1.0"]), osv("GHSA-l-2", versions=["1.1"]))
    assert import_advisories(project, z).added == 3
    assert import_advisories(project, folder).added == 2
    r = import_advisories(project, single)
    assert (r.records, r.added) == (2, 2)
    assert advisory_count(project) == 7
    assert {row.package for row in _stored(project)["affected"]} == {"numpy", "torch", "scikit-learn"}


def test_import_is_idempotent_and_audited_with_digest(project: Any, tmp_path: Path) -> None:
    f = write(tmp_path / "a.json", osv("GHSA-a", versions=["1.0"]))
    first = import_advisories(project, f)
    again = import_advisories(project, f)
    assert (first.added, again.added, again.unchanged) == (1, 0, 1)
    assert len(_stored(project)["affected"]) == 1
    digest = "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
    entries = [e.details for e in project.audit.entries(action="vulns.import", newest_first=False)]
    assert len(entries) == 2
    assert entries[0]["digest"] == digest and entries[0]["added"] == 1
    assert entries[0]["imported_at"] and entries[1]["unchanged"] == 1
    assert _stored(project)["heads"]["GHSA-a"].import_digest == digest


def test_newer_modified_replaces_older_never_the_reverse(project: Any, tmp_path: Path) -> None:
    old = osv("GHSA-m", versions=["1.0"], modified="2026-01-01T00:00:00Z", summary="old")
    new = osv("GHSA-m", versions=["2.0"], modified="2026-02-01T00:00:00+00:00", summary="new")
    import_advisories(project, write(tmp_path / "old.json", old))
    r = import_advisories(project, write(tmp_path / "new.json", new))
    assert r.updated == 1
    st = _stored(project)
    assert st["heads"]["GHSA-m"].summary == "new"
    assert [json.loads(a.versions_json) for a in st["affected"]] == [["2.0"]]
    r = import_advisories(project, tmp_path / "old.json")
    assert (r.updated, r.unchanged) == (0, 1)
    assert _stored(project)["heads"]["GHSA-m"].summary == "new"


def test_the_newest_copy_wins_inside_one_import(project: Any, tmp_path: Path) -> None:
    recs = [osv("GHSA-d", versions=["3.0"], modified="2026-03-01T00:00:00Z", summary="newest"),
            osv("GHSA-d", versions=["1.0"], modified="2026-01-01T00:00:00Z", summary="oldest")]
    import_advisories(project, write(tmp_path / "d.json", *recs))
    assert _stored(project)["heads"]["GHSA-d"].summary == "newest"


def test_withdrawn_record_is_kept_but_matches_nothing(project: Any, tmp_path: Path) -> None:
    import_advisories(project, write(tmp_path / "a.json", osv("GHSA-w", versions=["1.0"])))
    gone = osv("GHSA-w", versions=["1.0"], modified="2026-05-01T00:00:00Z", withdrawn="2026-05-01T00:00:00Z")
    r = import_advisories(project, write(tmp_path / "b.json", gone))
    assert (r.updated, r.withdrawn) == (1, 1)
    st = _stored(project)
    assert st["heads"]["GHSA-w"].withdrawn and st["affected"] == []
    # an older copy of the withdrawn record cannot bring it back
    assert import_advisories(project, tmp_path / "a.json").unchanged == 1
    assert _stored(project)["affected"] == []


def test_records_without_pypi_are_ignored(project: Any, tmp_path: Path) -> None:
    recs = [osv("GHSA-npm", "left-pad", ecosystem="npm", versions=["1.0.0"]),
            osv("RUSTSEC-1", "serde", ecosystem="crates.io", versions=["1.0.0"]),
            osv("PYSEC-1", versions=["1.0"])]
    r = import_advisories(project, write(tmp_path / "mixed.json", *recs))
    assert (r.records, r.added, r.ignored) == (3, 1, 2)
    assert set(_stored(project)["heads"]) == {"PYSEC-1"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"id": "X-1"}', "'modified' is missing"),
        (b"[]", "holds no OSV records"),
        (json.dumps({"id": "X-2", "modified": "2026-01-01T00:00:00Z", "affected": "numpy"}).encode(),
         "'affected' must be a list"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(project: Any, tmp_path: Path, content: bytes,
                                                    message: str) -> None:
    f = tmp_path / "bad.json"
    f.write_bytes(content)
    with pytest.raises(DataError, match=message):
        import_advisories(project, f)
    assert advisory_count(project) == 0


def test_one_bad_record_in_a_zip_stops_the_whole_import(project: Any, tmp_path: Path) -> None:
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("good.json", json.dumps(osv("GHSA-good", versions=["1.0"])))
        zf.writestr("bad.json", json.dumps({"id": "GHSA-bad"}))
    with pytest.raises(DataError, match=r"bad\.json.*'modified' is missing"):
        import_advisories(project, z)
    assert advisory_count(project) == 0


@pytest.mark.parametrize("make", ["missing", "empty_dir", "not_zip_not_json"])
def test_missing_or_empty_sources(project: Any, tmp_path: Path, make: str) -> None:
    target = tmp_path / "src"
    if make == "empty_dir":
        target.mkdir()
    elif make == "not_zip_not_json":
        target.write_bytes(b"PK\x03\x04 broken zip header")
    with pytest.raises(DataError):
        import_advisories(project, target)


def test_zip_member_that_inflates_past_the_limit_is_refused(project: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import bastion.vulns.store as store

    monkeypatch.setattr(store, "_MAX_RECORD_BYTES", 1000)
    z = tmp_path / "big.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        rec = osv("GHSA-big", versions=["1.0"], summary="x" * 5000)
        zf.writestr("big.json", json.dumps(rec))
    with pytest.raises(DataError, match=r"larger than|inflates"):
        import_advisories(project, z)
