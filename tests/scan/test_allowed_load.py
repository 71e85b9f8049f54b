"""Versions registered with --allow-finding load with exactly the audited allowed globals, and nothing else.

The allowance is read from the audited registration record (hash, chain link, signed checkpoint), never from
the registry rows: editing the database around it is a refused load, and critical names are never allowed.
"""

from __future__ import annotations

import json
import pickle
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from bastion.audit.log import canonical, entry_hash
from bastion.errors import UnsafeArtifactError
from bastion.scan.restricted import allowable, restricted_loads
from bastion.store.schema import audit_log, models

_MODULE = "bastion_allowtest_mod"
_SOURCE = textwrap.dedent(
    """
    class Wrapper:
        def __init__(self, model, extra=None):
            self.model = model
            self.extra = extra

        def predict(self, x):
            return self.model.predict(x)


    class Other:
        pass
    """
)


@pytest.fixture
def custom_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / f"{_MODULE}.py").write_text(_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, _MODULE, raising=False)
    import importlib

    return importlib.import_module(_MODULE)


def _fitted() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])


def _write(path: Path, obj: Any) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def _register(project: Any, path: Path, allow: dict[str, str]) -> Any:
    return project.log_model(path, name="custom", allow_findings=allow)


_ALLOW = {f"pickle.unknown-callable:{_MODULE}.Wrapper": "our own wrapper, reviewed in PR 42"}
_X = np.array([[0.5], [2.5]])


def _register_entry(project: Any, ref: str) -> Any:
    e = project.audit.newest(("model.register",), subject=ref)
    assert e is not None
    return e


def _rewrite_details(project: Any, seq: int, details: dict[str, Any], *, rehash_tail: bool) -> None:
    """What an attacker with write access to the database does: edit the entry, optionally re-hash the chain."""
    with project.transaction() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.seq >= seq).order_by(audit_log.c.seq)).all()
        prev = rows[0].prev_hash
        for i, r in enumerate(rows):
            dj = canonical(details).decode() if i == 0 else r.details_json
            if i and not rehash_tail:
                break
            h = entry_hash(r.seq, r.ts, r.actor, r.action, r.subject, dj, prev)
            values: dict[str, Any] = {"details_json": dj}
            if rehash_tail or i == 0:
                values.update(hash=h if rehash_tail else r.hash, prev_hash=prev)
            conn.execute(update(audit_log).where(audit_log.c.seq == r.seq).values(**values))
            prev = h


def test_allowed_class_loads_predicts_and_passes_trust(project: Any, custom_module: Any, tmp_path: Path) -> None:
    from bastion.gates.run import load_gate_model
    from bastion.trust import evaluate

    path = _write(tmp_path / "model.pkl", custom_module.Wrapper(_fitted()))
    mv = _register(project, path, _ALLOW)
    assert mv.scan_status == "allowed"
    entry = _register_entry(project, mv.ref)
    assert entry.details["allowed_globals"] == [f"{_MODULE}.Wrapper"]
    model = project.load_model(mv.ref)
    assert type(model).__name__ == "Wrapper" and list(model.predict(_X)) == [0, 1]
    assert list(load_gate_model(project, mv.ref).predict(_X)) == [0, 1]  # gates and serve load through this
    scan = evaluate(project, mv, None, purpose="check", requires=["scan"]).checks["scan"]
    assert scan.ok and scan.data["allowed_globals"] == [f"{_MODULE}.Wrapper"]


def test_allowance_is_anchored_by_a_signed_checkpoint(project: Any, custom_module: Any, tmp_path: Path) -> None:
    from bastion.audit.checkpoints import anchor, init_audit_key

    init_audit_key(project)
    mv = _register(project, _write(tmp_path / "model.pkl", custom_module.Wrapper(_fitted())), _ALLOW)
    ok, why = anchor(project, _register_entry(project, mv.ref))
    assert ok, why  # registering an allowance writes a checkpoint at once
    assert list(project.load_model(mv.ref).predict(_X)) == [0, 1]
    # an attacker who re-hashes the whole chain after editing the allowance still cannot forge the checkpoint
    entry = _register_entry(project, mv.ref)
    _rewrite_details(project, entry.seq, {**entry.details, "allowed_globals": [f"{_MODULE}.Wrapper",
                                                                             f"{_MODULE}.Other"]}, rehash_tail=True)
    with pytest.raises(UnsafeArtifactError, match="not proven by the audit chain"):
        project.load_model(mv.ref)


def test_another_global_in_the_same_file_is_still_refused(project: Any, custom_module: Any, tmp_path: Path) -> None:
    data = pickle.dumps(custom_module.Wrapper(_fitted(), extra=custom_module.Other()), protocol=4)
    # the loader: allowing one class never allows its neighbour
    with pytest.raises(UnsafeArtifactError, match=rf"{_MODULE}\.Other, which is not on the allowlist"):
        restricted_loads(data, allow=[f"{_MODULE}.Wrapper"])
    # the registry: the scan names the other global, which the operator did not allow
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafeArtifactError, match=rf"Refusing to register model\.pkl.*{_MODULE}\.Other"):
        _register(project, path, _ALLOW)
    assert project.list_models() == []


def test_scanner_miss_of_a_second_global_is_a_refused_load(project: Any, custom_module: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.registry import _scanning

    real = _scanning.scan_for_register

    def missed(p: Any, path: Path, *, allow_findings: dict[str, str]) -> dict[str, Any] | None:
        doc = real(p, path, allow_findings={**allow_findings, "pickle.unknown-callable": "simulated miss"})
        assert doc is not None
        doc["allowed_globals"] = [f"{_MODULE}.Wrapper"]  # the scanner "saw" only the wrapper
        return doc

    monkeypatch.setattr(_scanning, "scan_for_register", missed)
    data = pickle.dumps(custom_module.Wrapper(_fitted(), extra=custom_module.Other()), protocol=4)
    (tmp_path / "model.pkl").write_bytes(data)
    with pytest.raises(UnsafeArtifactError, match=rf"{_MODULE}\.Other, which is not on the allowlist"):
        _register(project, tmp_path / "model.pkl", _ALLOW)


def test_a_forged_allowance_covered_by_a_later_checkpoint_is_refused(project: Any, custom_module: Any,
                                                                      tmp_path: Path) -> None:
    # A database-level attacker appends a well-formed registration record for a version of their own; the next
    # legitimate checkpoint signs the chain head and so covers it. Covering is not vouching: refused.
    from dataclasses import replace

    from bastion.audit.checkpoints import anchor, init_audit_key, write_checkpoint
    from bastion.registry._scanning import audited_allowed_globals

    init_audit_key(project)
    mv = _register(project, _write(tmp_path / "model.pkl", custom_module.Wrapper(_fitted())), _ALLOW)
    assert audited_allowed_globals(project, mv) == (f"{_MODULE}.Wrapper",)
    forged = replace(mv, version=mv.version + 1)
    with project.db.write() as conn:
        project.audit.append(conn, action="model.register", subject=forged.ref,
                             details={**_register_entry(project, mv.ref).details,
                                      "allowed_globals": [f"{_MODULE}.Wrapper", f"{_MODULE}.Other"]})
    project.audited("note.after", "x", {})
    assert write_checkpoint(project) is not None  # e.g. `bastion audit checkpoint`, or the periodic one
    entry = _register_entry(project, forged.ref)
    assert anchor(project, entry)[0]  # a checkpoint covers it...
    ok, why = anchor(project, entry, vouched=True)
    assert not ok and "vouches" in why  # ...but none vouches for it
    with pytest.raises(UnsafeArtifactError, match="not proven by the audit chain"):
        audited_allowed_globals(project, forged)
    assert audited_allowed_globals(project, mv) == (f"{_MODULE}.Wrapper",)  # the real one still loads


@pytest.mark.parametrize("rehash", [False, True])
def test_editing_the_allowance_in_the_database_is_refused(project: Any, custom_module: Any, tmp_path: Path,
                                                          rehash: bool) -> None:
    from bastion.trust import evaluate

    mv = _register(project, _write(tmp_path / "model.pkl", custom_module.Wrapper(_fitted())), _ALLOW)
    project.audited("note.after", "x", {})  # the entry after the registration, as in any working project
    entry = _register_entry(project, mv.ref)
    widened = {**entry.details, "allowed_globals": [f"{_MODULE}.Other", f"{_MODULE}.Wrapper"]}
    if rehash:
        # the attacker recomputes the edited entry's own hash: the next entry's link to it breaks
        with project.transaction() as conn:
            dj = canonical(widened).decode()
            h = entry_hash(entry.seq, entry.ts, entry.actor, entry.action, entry.subject, dj, entry.prev_hash)
            conn.execute(update(audit_log).where(audit_log.c.seq == entry.seq).values(details_json=dj, hash=h))
        why = "chain breaks after its registration record"
    else:
        _rewrite_details(project, entry.seq, widened, rehash_tail=False)
        why = "was altered"
    with pytest.raises(UnsafeArtifactError, match=why):
        project.load_model(mv.ref)
    assert not evaluate(project, mv, None, purpose="check", requires=["scan"]).checks["scan"].ok


def test_editing_the_scan_document_or_status_rows_does_not_widen(project: Any, custom_module: Any,
                                                                 tmp_path: Path) -> None:
    from bastion.store.schema import attachments

    clean = project.log_model(_write(tmp_path / "clean.pkl", _fitted()), name="plain")
    assert clean.scan_status == "clean"
    mv = _register(project, _write(tmp_path / "model.pkl", custom_module.Wrapper(_fitted())), _ALLOW)
    with project.transaction() as conn:
        # the stored scan document now "allows" os.system and the other class: it is not where loads look
        rows = conn.execute(select(attachments).where(attachments.c.doc_kind == "scan",
                                                      attachments.c.body.is_not(None))).all()
        assert rows
        for r in rows:
            doc = json.loads(r.body)
            doc["allowed_globals"] = ["os.system", f"{_MODULE}.Other"]
            conn.execute(update(attachments).where(attachments.c.id == r.id).values(body=json.dumps(doc)))
        # a clean version's row flipped to "allowed" has no audited allowance behind it
        conn.execute(update(models).where(models.c.name == "plain").values(scan_status="allowed"))
    assert list(project.load_model(mv.ref).predict(_X)) == [0, 1]
    with pytest.raises(UnsafeArtifactError, match="audited registration record says scan 'clean'"):
        project.load_model(clean.ref)


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "builtins.exec", "posix.system",
                                  "subprocess.Popen", "builtins.getattr", "builtins.__import__",
                                  "nt.system", "runpy._run_code", "pickle.loads"])
def test_critical_names_can_never_be_allowed(name: str) -> None:
    assert not allowable(name)
    with pytest.raises(UnsafeArtifactError, match="cannot be allowed"):
        restricted_loads(pickle.dumps(1), allow=[name])


def test_critical_name_forged_into_an_unanchored_record_is_refused(project: Any, custom_module: Any,
                                                                   tmp_path: Path) -> None:
    mv = _register(project, _write(tmp_path / "model.pkl", custom_module.Wrapper(_fitted())), _ALLOW)
    entry = _register_entry(project, mv.ref)
    # without an audit key a full re-hash of the chain passes the integrity checks; the name check still holds
    _rewrite_details(project, entry.seq, {**entry.details, "allowed_globals": ["os.system", f"{_MODULE}.Wrapper"]},
                     rehash_tail=True)
    with pytest.raises(UnsafeArtifactError, match=r"lists os\.system, which gives code execution"):
        project.load_model(mv.ref)


def test_allowing_a_critical_finding_never_loads_it(project: Any, tmp_path: Path) -> None:
    canary = tmp_path / "PWNED"
    payload = b"\x80\x02cos\nsystem\nq\x00X" + len(f"touch {canary}").to_bytes(4, "little") \
        + f"touch {canary}".encode() + b"q\x01\x85q\x02Rq\x03."
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafeArtifactError, match=r"os\.system"):
        project.log_model(path, name="evil", allow_findings={"pickle.dangerous-global": "I insist"})
    assert not canary.exists() and project.list_models() == []
