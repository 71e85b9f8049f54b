from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from bastion.errors import DataError, IntegrityError, NotFoundError, RegistryError, UnsafeArtifactError
from bastion.project import Project


def test_log_model_records_lineage_code_environment(
    any_project: Project, toy_df: pd.DataFrame, toy_model: LogisticRegression
) -> None:
    ds = any_project.register_dataset(toy_df, name="patients")
    mv = any_project.log_model(
        toy_model,
        name="readmission",
        datasets=[ds],
        metrics={"auc": 0.91},
        params={"C": 1.0},
        tags={"team": "risk"},
        description="first",
    )
    assert mv.ref == "readmission:1"
    assert mv.flavor == "skops" and mv.framework.startswith("scikit-learn==")
    assert mv.datasets == ["patients:1"]
    assert mv.metrics == {"auc": 0.91} and mv.params == {"C": 1.0}
    env = any_project.environment(mv.ref)
    assert env["python"] and "scikit-learn" in env["packages"]
    assert any_project.blobs.exists(mv.digest)
    loaded = any_project.load_model("readmission:1")
    assert (loaded.predict(toy_df[["age", "income"]]) == toy_model.predict(toy_df[["age", "income"]])).all()


def test_versions_are_immutable_and_numbered_per_name(project: Project, toy_model: LogisticRegression) -> None:
    a1 = project.log_model(toy_model, name="a")
    b1 = project.log_model(toy_model, name="b")
    a2 = project.log_model(toy_model, name="a", parent="a:1")
    assert (a1.version, b1.version, a2.version) == (1, 1, 2)
    assert a2.parent == "a:1"
    assert project.get_model("a").version == 2  # bare name = latest


def test_code_is_recorded_inside_a_git_repo(project: Project, project_dir: Path, toy_model: LogisticRegression) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q"], cwd=project_dir, check=True)
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"],
        cwd=project_dir,
        check=True,
    )
    from bastion.registry import environment

    environment._code_cache.clear()
    mv = project.log_model(toy_model, name="m")
    assert len(mv.code["git_commit"]) == 40
    assert mv.code["dirty"] is False


def test_diff_and_lineage(project: Project, toy_df: pd.DataFrame, toy_model: LogisticRegression) -> None:
    raw = project.register_dataset(toy_df, name="raw")
    clean = project.register_dataset(toy_df.drop(columns=["city"]), name="clean", derived_from=[raw.ref])
    project.log_model(toy_model, name="m", datasets=[clean], params={"C": 1.0}, metrics={"auc": 0.8})
    project.log_model(toy_model, name="m", datasets=[clean], params={"C": 0.5}, metrics={"auc": 0.85}, parent="m:1")
    d = project.diff_models("m:1", "m:2")
    assert d["params"] == {"C": {"a": 1.0, "b": 0.5}}
    assert d["metrics"]["auc"] == {"a": 0.8, "b": 0.85}
    assert d["datasets"]["same"] is True
    tree = project.lineage("m:2")
    assert tree["ref"] == "m:2"
    refs = _refs(tree)
    assert {"m:2", "clean:1", "raw:1", "m:1"} <= refs


def _refs(node: dict) -> set[str]:  # type: ignore[type-arg]
    out = {node.get("ref")} if node.get("ref") else set()
    for c in node["children"]:
        out |= _refs(c)
    return out


def test_register_file_model(project: Project, toy_model: LogisticRegression, tmp_path: Path) -> None:
    import skops.io as sio

    path = tmp_path / "model.skops"
    sio.dump(toy_model, path)
    mv = project.log_model(path, name="f")
    assert mv.flavor == "skops" and mv.artifact_name == "model.skops"


def _no_scan(project: Project) -> None:
    from dataclasses import replace

    project.settings = replace(project.settings, scan_on_register=False)


def test_pickle_is_never_loaded_without_a_clean_scan(
    project: Project, toy_model: LogisticRegression, tmp_path: Path
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(toy_model))
    _no_scan(project)
    mv = project.log_model(path, name="p")
    assert mv.scan_status == "unscanned"
    with pytest.raises(UnsafeArtifactError, match="scanned clean"):
        project.load_model("p:1")


def test_untrusted_skops_types_are_refused(project: Project, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(func=pickle.loads)  # a callable skops does not trust
    path = tmp_path / "ft.skops"
    sio.dump(model, path)
    _no_scan(project)
    with pytest.raises(UnsafeArtifactError, match=r"Refusing to register ft.skops.*not trusted"):
        project.log_model(path, name="ft")  # registration loads it as its flavor: refused, nothing built
    assert project.list_models() == []
    # types reviewed at registration are recorded with the version; a later load must name them again
    reviewed = ["_pickle.loads", "sklearn.preprocessing._function_transformer.FunctionTransformer"]
    project.log_model(path, name="ft", trusted=reviewed)
    assert project.attachments("ft:1", "flavor")[-1]["trusted_types"] == sorted(reviewed)
    with pytest.raises(UnsafeArtifactError, match="not trusted"):
        project.load_model("ft:1")


def test_swapped_artifact_is_refused_at_load(project: Project, toy_model: LogisticRegression) -> None:
    import os

    mv = project.log_model(toy_model, name="m")
    blob = project.blobs.path_of(mv.digest)  # type: ignore[attr-defined]
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model m:1"):
        project.load_model("m:1")


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"name": "bad name"}, RegistryError, "Invalid model name"),
        ({"name": "m", "datasets": ["nope:1"]}, NotFoundError, "No dataset named 'nope'"),
        ({"name": "m", "metrics": {"auc": "high"}}, RegistryError, "must be a number"),
        ({"name": "m", "parent": "ghost:1"}, NotFoundError, "No model named 'ghost'"),
    ],
)
def test_bad_registration_changes_nothing(project: Project, toy_model: LogisticRegression, kwargs, err, match) -> None:  # type: ignore[no-untyped-def]
    before = project.audit.count()
    with pytest.raises(err, match=match):
        project.log_model(toy_model, **kwargs)
    assert project.list_models() == []
    assert project.audit.count() == before


def test_missing_model_file(project: Project) -> None:
    with pytest.raises(DataError, match="does not exist"):
        project.log_model("nope.pkl", name="m")


def test_non_sklearn_object_is_refused(project: Project) -> None:
    with pytest.raises(DataError, match="skops"):
        project.log_model({"not": "a model"}, name="m")


def test_soft_delete_and_gc(project: Project, toy_model: LogisticRegression, tmp_path: Path) -> None:
    f = tmp_path / "only-here.bin"
    f.write_bytes(b"unique artifact bytes")
    _no_scan(project)
    mv = project.log_model(f, name="m", flavor="file")
    keep = project.log_model(toy_model, name="m")
    project.delete_model(mv.ref, reason="bad data")
    with pytest.raises(RegistryError, match="deleted"):
        project.get_model(mv.ref)
    assert [m.ref for m in project.list_models()] == [keep.ref]
    assert project.blobs.exists(mv.digest)  # kept until gc
    assert mv.digest in project.gc(dry_run=True)
    project.gc()
    assert not project.blobs.exists(mv.digest)
    assert project.blobs.exists(keep.digest)
    assert project.load_model(keep.ref) is not None


def test_edited_attachment_is_detected(project: Project, toy_model: LogisticRegression) -> None:
    from sqlalchemy import text

    mv = project.log_model(toy_model, name="m")
    project.attach(mv.ref, "gate", {"passed": False})
    assert project.attachments(mv.ref, "gate") == [{"passed": False}]
    with project.db.engine.begin() as conn:
        conn.execute(text("UPDATE attachments SET body = :b WHERE doc_kind = 'gate'"), {"b": '{"passed":true}'})
    with pytest.raises(IntegrityError, match="edited"):
        project.attachments(mv.ref, "gate")


def test_large_attachments_go_to_the_blob_store(project: Project, toy_model: LogisticRegression) -> None:
    mv = project.log_model(toy_model, name="m")
    doc = {"rows": ["x" * 100] * 5000}
    digest = project.attach(mv.ref, "report", doc)
    assert project.blobs.exists(digest)
    assert project.attachments(mv.ref, "report") == [doc]


def test_cached_loads_are_copies_and_a_swapped_blob_is_reloaded(
    project: Project, toy_model: LogisticRegression
) -> None:
    import os

    mv = project.log_model(toy_model, name="m")
    a = project.load_model(mv.ref)
    b = project.load_model("m:1")
    assert a is not b
    a.coef_[0, 0] = 123.0
    assert project.load_model("m:1").coef_[0, 0] != 123.0
    blob = project.blobs.path_of(mv.digest)  # type: ignore[attr-defined]
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        project.load_model("m:1")


def test_small_attachments_are_stored_inline(project: Project, toy_model: LogisticRegression) -> None:
    mv = project.log_model(toy_model, name="m")
    digest = project.attach(mv.ref, "gate", {"passed": True})
    assert not project.blobs.exists(digest)
    assert project.attachments(mv.ref, "gate") == [{"passed": True}]


def test_a_scanner_miss_is_a_refused_load_not_code_execution(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with a clean recorded scan, a pickle reaches Python only through the restricted unpickler."""
    from bastion.registry import _scanning

    canary = tmp_path / "PWNED"
    cmd = f"touch {canary}".encode()
    payload = b"\x80\x02cos\nsystem\n(X" + len(cmd).to_bytes(4, "little") + cmd + b"tR."
    path = tmp_path / "model.pkl"
    path.write_bytes(payload)
    real = _scanning.scan_for_register

    def missed(project: Project, path: Path, *, allow_findings: dict[str, str]) -> dict[str, object] | None:
        doc = real(project, path, allow_findings={"pickle.dangerous-global": "simulating a scanner miss"})
        assert doc is not None
        doc.update(status="clean", clean=True)
        return doc

    monkeypatch.setattr(_scanning, "scan_for_register", missed)
    # registration loads it as its flavor, through the restricted unpickler: refused there already
    with pytest.raises(UnsafeArtifactError, match=r"Refusing to register model\.pkl.*imports os\.system"):
        project.log_model(path, name="miss")
    assert not canary.exists() and project.list_models() == []
    # and should that check be missed too, loading the stored version is still a refusal
    from bastion.flavors import FlavorInfo
    from bastion.registry import _validate

    monkeypatch.setattr(_validate, "validate_artifact", lambda *a, **k: (FlavorInfo("pickle", "unknown"), None))
    mv = project.log_model(path, name="miss")
    assert mv.scan_status == "clean"
    with pytest.raises(UnsafeArtifactError, match=r"restricted loader: The pickle imports os\.system"):
        project.load_model("miss:1")
    assert not canary.exists()


def test_pickled_models_load_through_the_restricted_unpickler(
    project: Project, toy_model: LogisticRegression, tmp_path: Path
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(toy_model))
    mv = project.log_model(path, name="lr")
    assert mv.scan_status == "clean"
    loaded = project.load_model("lr:1")
    assert isinstance(loaded, LogisticRegression)
    assert (loaded.coef_ == toy_model.coef_).all()
