"""Legacy torch checkpoints (issue 12): every pickle torch.load reads is analysed, and torch's rebuild helpers
are judged position by position.

The samples with a payload in each legacy pickle live in the corpus (tests/scan/corpus/_torch_legacy.py),
whose test proves each one runs under ``torch.load(weights_only=False)`` in a throwaway subprocess (canary
file); here the scanner must fail each, and benign legacy and zip checkpoints of every tensor kind must scan
clean. Rebuild-helper signatures are checked by the scanner and the restricted loader alike.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import UnsafeArtifactError
from bastion.scan import Severity, scan_path
from bastion.scan.restricted import restricted_loads

from .conftest import load_corpus_module

A = load_corpus_module("_pickleasm")
G = A.glob


class _Reduce:
    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


_LEGACY_POSITIONS = {
    "torch_legacy_magic-number.pt", "torch_legacy_protocol.pt", "torch_legacy_sysinfo.pt", "torch_legacy_main.pt",
    "torch_legacy_storage-keys.pt", "torch_legacy_tar.tar", "torch_tar_storage_record.tar",
    "torch_tar_storage_views.tar", "torch_tar_tensor_record.tar", "torch_tar_pickle_member.tar",
    "torch_tar_no_sys_info.tar",
}


def test_a_payload_in_every_legacy_pickle_is_found(scan_corpus: Any) -> None:
    # the corpus proves each payload runs under torch.load(weights_only=False) (tests/scan/test_corpus.py)
    samples = {s.name: s for s in scan_corpus.malicious}
    assert _LEGACY_POSITIONS <= set(samples)
    for name in sorted(_LEGACY_POSITIONS):
        assert samples[name].loader == "torch"
        report = scan_path(samples[name].path)
        hits = {f.construct for f in report.findings if f.severity >= Severity.HIGH}
        assert {"posix.system", "logging.FileHandler", "commands.check_call"} & hits, (name, hits)


def test_benign_legacy_and_zip_checkpoints_of_every_tensor_kind_scan_clean(scan_corpus: Any) -> None:
    kinds = [s for s in scan_corpus.benign if s.format in ("torch", "torch-legacy", "torch-tar")]
    assert len(kinds) >= 24
    for s in kinds:
        loud = [(f.rule_id, f.construct) for f in scan_path(s.path).findings if f.severity >= Severity.MEDIUM]
        assert loud == [], s.name


@pytest.mark.parametrize(
    ("member", "data", "why"),
    [
        ("storages", pickle.dumps("two", protocol=2), "not a count"),
        ("storages", pickle.dumps(1, protocol=2) + pickle.dumps((0, "cpu", "FloatStorage"), protocol=2)
         + struct.pack("<q", 4), "unknown type"),
        ("storages", pickle.dumps(1, protocol=2) + pickle.dumps((0, "cpu", None), protocol=2), "unknown type"),
        ("tensors", pickle.dumps(1, protocol=2) + pickle.dumps((0, 0, None), protocol=2) + struct.pack("<i", 99),
         "impossible rank"),
    ],
)
def test_tar_records_torch_cannot_follow_are_findings(tmp_path: Path, member: str, data: bytes, why: str) -> None:
    path = tmp_path / "old.tar"
    tar = load_corpus_module("_torch_legacy").tar
    path.write_bytes(tar([(member, data), ("pickle", pickle.dumps({}, protocol=2))]))
    found = [f for f in scan_path(path).findings if f.rule_id == "torch.legacy-layout"]
    assert found and found[0].severity == Severity.HIGH and why in found[0].message


def test_storage_sized_beyond_its_bytes_is_a_finding(tmp_path: Path) -> None:
    import torch

    record = pickle.dumps((0, "cpu", torch.FloatStorage), protocol=2)
    tar = load_corpus_module("_torch_legacy").tar
    path = tmp_path / "old.tar"
    path.write_bytes(tar([("storages", pickle.dumps(1, protocol=2) + record + struct.pack("<q", 1 << 40))]))
    assert any(f.rule_id == "torch.legacy-layout" and "not there" in f.message for f in scan_path(path).findings)


# -- argument signatures of torch's rebuild helpers --------------------------------------------------------

_U = "torch._utils"
_META = A.call(G(_U, "_rebuild_meta_tensor_no_storage"), G("torch", "float32"), (2,), (1,), False)
_ODICT = A.call(G("collections", "OrderedDict"))


@pytest.mark.parametrize(
    ("name", "body"),
    [
        # a tensor position given an object torch would call methods on
        ("parameter-data-not-a-tensor", A.call(G(_U, "_rebuild_parameter"), _ODICT, False, _ODICT)),
        ("cpu-tensor-data-not-a-tensor", A.call(G(_U, "_rebuild_device_tensor_from_cpu_tensor"), _ODICT,
                                                G("torch", "float32"), "cpu", False)),
        # a dtype position given a class
        ("meta-dtype-is-a-class", A.call(G(_U, "_rebuild_meta_tensor_no_storage"), G("torch.nn", "Linear"), (2,),
                                         (1,), False)),
        # a storage position given data
        ("storage-is-a-string", A.call(G(_U, "_rebuild_tensor_v2"), "storage", 0, (2,), (1,), False, _ODICT)),
        # the qscheme slot given a dtype
        ("qparams-without-qscheme", A.call(G(_U, "_rebuild_qtensor"), "s", 0, (2,), (1,),
                                           A.Raw(A.tup([G("torch", "float32"), 0.1, 0])), False, _ODICT)),
        # a wrapper subclass that is not a torch class
        ("wrapper-class-not-torch", A.call(G(_U, "_rebuild_wrapper_subclass"), G("collections", "OrderedDict"),
                                           G("torch", "float32"), (2,), (1,), 0, G("torch", "strided"), "cpu",
                                           False)),
        # a layout position given a dtype
        ("sparse-layout-is-a-dtype", A.call(G(_U, "_rebuild_sparse_tensor"), G("torch", "float32"),
                                            A.Raw(A.tup([_META, _META, (2,)])))),
        # state written onto the tensor with a dunder name
        ("state-with-dunder", A.call(G(_U, "_rebuild_parameter_with_state"), _META, False, _ODICT,
                                     {"__class__": 1})),
        # backward hooks holding a callable (hooks run on backward)
        ("hooks-hold-a-callable", A.call(G(_U, "_rebuild_parameter"), _META, False,
                                         A.Raw(A.EMPTY_DICT + A.value(0) + bytes(G("builtins", "print")) + b"s"))),
        ("from-type-state-with-dunder", A.call(G("torch._tensor", "_rebuild_from_type"),
                                               G(_U, "_rebuild_meta_tensor_no_storage"), G("torch", "Tensor"),
                                               A.Raw(A.tup([G("torch", "float32"), (2,), (1,), False])),
                                               {"__class__": 1})),
        ("layout-name-is-a-global", A.call(G("torch.serialization", "_get_layout"), G("torch", "strided"))),
        ("too-many-arguments", A.call(G(_U, "_rebuild_meta_tensor_no_storage"), G("torch", "float32"), (2,), (1,),
                                      False, 5)),
    ],
)
def test_rebuild_helpers_take_only_their_signature(name: str, body: Any) -> None:
    from bastion.scan import scan_bytes

    data = A.program(bytes(body), protocol=2)
    report = scan_bytes(data)
    rules = {f.rule_id for f in report.findings if f.severity >= Severity.HIGH}
    assert rules & {"pickle.argument-signature", "pickle.call-gadget"}, (name, report.findings)
    with pytest.raises(UnsafeArtifactError):
        restricted_loads(data)


def test_rebuild_helpers_used_as_torch_writes_them_load() -> None:
    import torch

    from bastion.scan import scan_bytes

    for obj in (torch.empty(3, 4, device="meta"), torch.nn.Parameter(torch.empty(2, device="meta")),
                {"w": torch.empty(2, device="meta", dtype=torch.bfloat16)}):
        data = pickle.dumps(obj)
        assert scan_bytes(data).max_severity is None, obj
        back: Any = restricted_loads(data)
        assert back.__class__ is obj.__class__


def test_legacy_tensor_type_sizes_are_limited() -> None:
    from bastion.scan import scan_bytes

    data = A.program(bytes(A.call(G("torch", "FloatTensor"), 1 << 20, 1 << 20)), protocol=2)
    assert any(f.rule_id == "limit.allocation" for f in scan_bytes(data).findings)
    with pytest.raises(UnsafeArtifactError, match="allocate"):
        restricted_loads(data)
