"""Parallel streaming hashing of model folders: digests, names, order, ignores, refusals."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.crypto.signing.hashing import hash_file, hash_model, list_model_files, root_digest, sort_names
from bastion.errors import DataError


def test_every_file_hashed_with_posix_relative_names(model: Path) -> None:
    digests = hash_model(model)
    expected = {
        p.relative_to(model).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in model.rglob("*") if p.is_file() and p.name != ".gitignore"
    }
    assert digests == expected
    assert ".gitignore" not in digests  # git metadata left out, as upstream does
    assert list(digests) == sort_names(digests)


def test_order_is_by_path_components_not_by_string() -> None:
    # "a-b/x" < "a/x" as strings ('-' < '/'), but upstream sorts by components: ("a", "x") < ("a-b", "x").
    assert sort_names(["a-b/x", "a/x", "a"]) == ["a", "a/x", "a-b/x"]


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_workers_do_not_change_the_result(model: Path, workers: int) -> None:
    assert hash_model(model, workers=workers) == hash_model(model, workers=1)


def test_single_file_model_is_named_dot(tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"onnx")
    assert hash_model(f) == {".": hashlib.sha256(b"onnx").hexdigest()}


def test_progress_reports_bytes(model: Path) -> None:
    seen: list[tuple[int, int]] = []
    hash_model(model, progress=lambda d, t: seen.append((d, t)))
    total = sum(p.stat().st_size for p in model.rglob("*") if p.is_file() and p.name != ".gitignore")
    assert seen[0] == (0, total) and seen[-1] == (total, total)


def test_ignore_paths_cover_folders(model: Path) -> None:
    digests = hash_model(model, ignore_paths=["sub"])
    assert not any(n.startswith("sub/") for n in digests)
    assert "weights.bin" in digests


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda root: os.symlink(root / "config.json", root / "link.json"), "symbolic link"),
        (lambda root: os.symlink(root / "sub", root / "linkdir"), "symbolic link"),
        (lambda root: os.mkfifo(root / "pipe"), "not a regular file"),
    ],
)
def test_links_and_special_files_refused(model: Path, make_bad, message: str) -> None:
    make_bad(model)
    with pytest.raises(DataError, match=message):
        list_model_files(model)


def test_missing_path_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        hash_model(tmp_path / "nope")


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=3 * 1024), buf=st.integers(min_value=1, max_value=64))
def test_streaming_equals_one_shot(tmp_path_factory: pytest.TempPathFactory, data: bytes, buf: int) -> None:
    p = tmp_path_factory.mktemp("h") / "f"
    p.write_bytes(data)
    assert hash_file(p, buffer_size=buf) == hashlib.sha256(data).hexdigest()


def test_root_digest_is_over_raw_digests_in_canonical_order() -> None:
    d = {"b": "11" * 32, "a": "22" * 32}
    assert root_digest(d) == hashlib.sha256(bytes.fromhex("22" * 32) + bytes.fromhex("11" * 32)).hexdigest()
