from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.errors import DataError, IntegrityError, StoreError
from bastion.store.blobs import CHUNK, LocalBlobStore, sha256_file, validate_member_path


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "artifacts")


def test_put_file_is_content_addressed_and_deduplicated(store: LocalBlobStore, tmp_path: Path) -> None:
    a = tmp_path / "a.bin"
    a.write_bytes(b"hello")
    b = tmp_path / "b.bin"
    b.write_bytes(b"hello")
    da, db = store.put_file(a), store.put_file(b)
    assert da == db == sha256_file(a)
    assert da == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert len(list(store.iter_digests())) == 1
    assert store.get_bytes(da) == b"hello"


def test_large_file_streams_through_the_threaded_copy(store: LocalBlobStore, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(CHUNK * 2 + 123))
    seen: list[int] = []
    d = store.put_file(big, progress=lambda done, total: seen.append(done))
    assert d == sha256_file(big)
    assert seen[-1] == big.stat().st_size
    assert store.path_of(d).read_bytes() == big.read_bytes()


def test_flipped_byte_is_detected_on_every_read(store: LocalBlobStore, tmp_path: Path) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"x" * 1000)
    d = store.put_file(f)
    p = store.path_of(d)
    os.chmod(p, 0o644)
    data = bytearray(p.read_bytes())
    data[10] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="corrupted or was swapped"):
        store.get_bytes(d, what="model x:1")
    with pytest.raises(IntegrityError, match="model x:1"):
        store.materialize(d, tmp_path / "out.bin", what="model x:1")
    assert not (tmp_path / "out.bin").exists()


def test_missing_blob_is_an_integrity_error(store: LocalBlobStore) -> None:
    with pytest.raises(IntegrityError, match="missing"):
        store.get_bytes("sha256:" + "0" * 64)


@pytest.mark.parametrize("digest", ["md5:abc", "sha256:xyz", "sha256:" + "A" * 64, "sha256:" + "0" * 63])
def test_malformed_digests_are_refused(store: LocalBlobStore, digest: str) -> None:
    with pytest.raises(StoreError):
        store.exists(digest)


def test_directory_round_trip_via_manifest(store: LocalBlobStore, tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "weights.bin").write_bytes(b"w" * 100)
    (src / "sub" / "config.json").write_text("{}")
    d, kind = store.put(src)
    assert kind == "dir"
    files = store.read_manifest(d)
    assert [f["path"] for f in files or []] == ["sub/config.json", "weights.bin"]
    out = store.materialize(d, tmp_path / "restored")
    assert (out / "sub" / "config.json").read_text() == "{}"
    assert (out / "weights.bin").read_bytes() == b"w" * 100


def test_symlinks_are_refused_in_directories(store: LocalBlobStore, tmp_path: Path) -> None:
    src = tmp_path / "model"
    src.mkdir()
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        store.put(src)


@pytest.mark.parametrize(
    "path,ok",
    [
        ("a/b.bin", True),
        ("weights.safetensors", True),
        ("../etc/passwd", False),
        ("/abs", False),
        ("a/../../b", False),
        ("a//b", False),
        ("a\\b", False),
        ("./a", False),
        ("", False),
    ],
)
def test_manifest_paths(path: str, ok: bool) -> None:
    if ok:
        assert str(validate_member_path(path)) == path
    else:
        with pytest.raises(IntegrityError):
            validate_member_path(path)


def test_manifest_with_traversal_is_refused_on_materialize(store: LocalBlobStore, tmp_path: Path) -> None:
    import json

    inner = store.put_bytes(b"payload")
    manifest = {
        "schema_version": 1,
        "kind": "bastion.dir-manifest",
        "files": [{"path": "../escape.txt", "digest": inner, "size": 7}],
    }
    d = store.put_bytes(json.dumps(manifest).encode())
    with pytest.raises(IntegrityError, match="leaves"):
        store.materialize(d, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_interrupted_write_leaves_no_blob(
    store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(os.urandom(CHUNK * 2))

    def boom(*_a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        store.put_file(f)
    monkeypatch.undo()
    assert list(store.iter_digests()) == []
    assert list((store.root / "tmp").iterdir()) == []
    assert store.put_file(f) == sha256_file(f)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=4096))
def test_put_get_round_trip(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    store = LocalBlobStore(tmp_path_factory.mktemp("blobs"))
    d = store.put_bytes(data)
    assert store.get_bytes(d) == data
