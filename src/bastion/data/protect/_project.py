"""Protection inside a Bastion project: register the output with lineage, attach the report, audit reveals.

The CLI calls these; each is one library call so the command stays a thin door.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.audit.refusals import record_refusal
from bastion.crypto.keys import KeyProvider, Keyring, create_key_file, project_data_keyring, resolve_provider
from bastion.data.protect._run import protect_file
from bastion.data.protect.report import ProtectionReport
from bastion.errors import DataError, KeyManagementError, PolicyViolation

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = [
    "check_reveal_allowed",
    "init_project_keys",
    "open_project_keyring",
    "protect_into_project",
    "reveal_audited",
]


def init_project_keys(project: ProjectHandle, *, passphrase: str | None) -> KeyProvider:
    """Create the project's master key file (scrypt-wrapped unless ``passphrase`` is None) and an empty data
    key ring; audited, with a passphrase-less key recorded as the unsafe development mode it is."""
    path = project.settings.key_path
    provider = create_key_file(path, passphrase)
    from bastion.audit.checkpoints import init_audit_key

    # the audit key signs checkpoints of the chain; separate from every other key (one per chain: a second
    # folder of a team gets none, it copies the public key)
    init_audit_key(project, elsewhere_ok=True)
    project.audited(
        "keys.init",
        provider.key_id,
        {"key_file": str(path), "passphrase": passphrase is not None, "unsafe_no_passphrase": passphrase is None},
    )
    return provider


def open_project_keyring(project: ProjectHandle, *, passphrase: str | None = None) -> Keyring:
    """The project's data key ring under its master key (``BASTION_MASTER_KEY``, else the key file)."""
    return project_data_keyring(project, resolve_provider(project.settings.key_path, passphrase=passphrase))


def protect_into_project(
    project: ProjectHandle,
    source: Path | str,
    output: Path | str,
    *,
    policy: Any = None,
    keyring: Keyring | None,
    name: str | None = None,
    engine: Any = None,
    progress: Callable[[int, int], None] | None = None,
    register: bool = True,
    accept_residual: bool = False,
    reason: str | None = None,
) -> tuple[ProtectionReport, Any]:
    """Protect ``source`` into ``output``, register it as a dataset version and attach the report.

    The residual check re-scans the output: when identifiers survive, the protected file is removed, nothing
    is registered and `PolicyViolation` is raised (audited), unless ``accept_residual`` with a ``reason``
    (audited as unsafe). Returns the report and the new ``DatasetVersion`` (None with ``register=False``).
    """
    src, out = Path(source), Path(output)
    if accept_residual and not (reason or "").strip():
        raise DataError("Accepting residual identifiers needs a reason (--reason '...'); it is audited.")
    dataset = name or src.name.split(".")[0]
    try:
        report = protect_file(
            src, out, policy=policy, keyring=keyring, dataset=dataset, engine=engine, progress=progress
        )
    except PolicyViolation as e:
        project.audited("data.protect.refused", str(src), {"source": str(src), "error": str(e)[:2000]})
        raise
    doc = report.to_dict()
    summary: dict[str, Any] = {
        "source": str(src),
        "source_digest": report.source_digest,
        "output": str(out),
        "rows": report.rows,
        "operators": doc["operators"],
        "key_ids": doc["key_ids"],
        "residual_identifiers": report.residual_identifiers,
    }
    if report.residual_identifiers:
        where = ", ".join(
            f"{c}: " + ", ".join(f"{e} x{n}" for e, n in sorted(v.items())) for c, v in sorted(report.residual.items())
        )
        if not accept_residual:
            out.unlink(missing_ok=True)
            project.audited("data.protect.refused", str(src), {**summary, "residual": doc["residual"]})
            raise PolicyViolation(
                f"residual identifiers: {report.residual_identifiers} ({where}) survive protection of {src.name}; "
                f"the output was removed and nothing was registered. Protect those columns or entities in the "
                "policy, or accept them with --accept-residual --reason '...' (audited)."
            )
        summary["unsafe_accept_residual"] = True
        summary["reason"] = reason
        summary["residual"] = doc["residual"]
    if not register:
        project.audited("data.protect", str(out), summary)
        return report, None
    dv = project.register_dataset(
        out,
        name=dataset,
        description=f"Protected from {src.name}",
        derived_from=[report.source_digest] if report.source_digest else [],
        extra={"protection": doc, "source_digest": report.source_digest},
    )
    project.attach(dv.ref, "protection", doc, subject_kind="dataset")
    project.audited("data.protect", dv.ref, summary)
    return report, dv


def check_reveal_allowed(project: ProjectHandle, source: Path | str, columns: Sequence[str], role: str) -> None:
    """Refuse a reveal the project policy's ``reveal`` section does not allow (audited as denied).

    Without a ``reveal`` section any role may reveal, and only the key gates it; with one, the role must be
    listed, the actor must be one of its actors and every column one of its columns (``"*"``: any).
    """
    from bastion.errors import PolicyViolation
    from bastion.gates.policy import find_project_policy, load_policy

    if not role.strip():
        raise DataError("Say in which role you reveal data (--role auditor, for example).")
    path = find_project_policy(project)
    if path is None:
        return
    rules = load_policy(path).reveal
    if not rules:
        return
    actor = project.actor
    rule = rules.get(role)
    if rule is None:
        reason = f"role '{role}' is not in the policy's reveal section (roles: {', '.join(sorted(rules))})"
    elif "*" not in rule.actors and actor not in rule.actors:
        reason = f"'{actor}' may not act as '{role}' (reveal.{role}.actors: {', '.join(rule.actors)})"
    elif "*" not in rule.columns and (extra := [c for c in columns if c not in rule.columns]):
        reason = f"role '{role}' may not reveal {', '.join(extra)} (reveal.{role}.columns: {', '.join(rule.columns)})"
    else:
        return
    record_refusal(project, "data.reveal.denied", str(source), reason,
                   {"source": str(source), "columns": list(columns), "role": role})
    raise PolicyViolation(f"Reveal refused: {reason}. Change {path.name} to allow it.")


def reveal_audited(
    project: ProjectHandle,
    source: Path | str,
    columns: Sequence[str],
    *,
    keyring: Keyring | Callable[[], Keyring | None],
    role: str,
    output: Path | str | None = None,
    limit: int | None = None,
) -> Any:
    """Reveal ``columns`` of a protected file and write an audit entry (who, role, what; never values).

    The policy's ``reveal`` section, when present, decides which roles, actors and columns may (see
    `check_reveal_allowed`). A failed attempt (wrong key, corrupted data) is audited too, then re-raised.
    """
    from bastion.data.reveal import reveal_file

    check_reveal_allowed(project, source, columns, role)
    details: dict[str, Any] = {
        "source": str(source),
        "columns": list(columns),
        "role": role,
        "output": str(output) if output else None,
    }
    try:
        # A callable opens the key only now, so a wrong passphrase is a denied (audited) reveal too.
        ring = keyring() if callable(keyring) else keyring
        if ring is None:
            raise KeyManagementError("No data key ring: run `bastion keys init` first.")
        result = reveal_file(source, columns, keyring=ring, output=output, limit=limit)
    except Exception as e:
        record_refusal(project, "data.reveal.denied", str(source), f"reveal failed: {type(e).__name__}",
                       {**details, "error": type(e).__name__})
        raise
    project.audited(
        "data.reveal", str(source), {**details, "rows": result.rows, "key_ids": list(result.key_ids)}
    )
    return result
