"""Audit entries for refusals (promotion refused, forbidden ``--force``, reveal denied, load refused).

A flood is aggregated: per actor, action, subject and reason, the first refusal of each UTC minute is
written at once (``count`` 1) and the rest of that minute become one entry with their ``count`` when the
minute is over (at the next refusal, at :func:`flush_refusals`, or at interpreter exit).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["RefusalAggregator", "flush_refusals", "record_refusal"]

log = logging.getLogger("bastion.audit")

_Key = tuple[str, str, str, str]


def _minute() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class _Bucket:
    minute: str
    details: dict[str, Any]
    extra: int = 0


@dataclass
class RefusalAggregator:
    """Per-process aggregation state of one audit log (held by ``AuditLog.refusals``)."""

    buckets: dict[_Key, _Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    exit_hook: bool = False


def _write(project: ProjectHandle, key: _Key, details: dict[str, Any]) -> None:
    actor, action, subject, _ = key
    with project.transaction() as conn:
        project.record(conn, action, subject, details, actor=actor)


def _due(agg: RefusalAggregator, minute: str | None) -> list[tuple[_Key, dict[str, Any]]]:
    """Pop the counts of finished minutes (every minute when ``minute`` is None)."""
    out: list[tuple[_Key, dict[str, Any]]] = []
    for key, b in list(agg.buckets.items()):
        if minute is not None and b.minute == minute:
            continue
        del agg.buckets[key]
        if b.extra:
            out.append((key, {**b.details, "count": b.extra, "aggregated": True, "window": b.minute}))
    return out


def record_refusal(
    project: ProjectHandle,
    action: str,
    subject: str,
    reason: str,
    details: dict[str, Any] | None = None,
    *,
    actor: str | None = None,
) -> None:
    """Audit one refusal (aggregated per actor, action, subject and reason per minute).

    Never raises for an audit write failure: the refusal itself must still reach the caller, so a failed
    write is logged (without the details) and the refusal goes on.
    """
    agg = project.audit.refusals
    who = actor or project.actor
    key: _Key = (who, action, subject, reason)
    minute = _minute()
    doc = {**(details or {}), "reason": reason}
    with agg.lock:
        due = _due(agg, minute)
        bucket = agg.buckets.get(key)
        first = bucket is None
        if bucket is None:
            agg.buckets[key] = _Bucket(minute, doc)
        else:
            bucket.extra += 1
        if not agg.exit_hook:
            agg.exit_hook = True
            ref = weakref.ref(project)

            def _at_exit() -> None:
                p = ref()
                if p is not None:
                    flush_refusals(p)

            atexit.register(_at_exit)
    try:
        for k, d in due:
            _write(project, k, d)
        if first:
            _write(project, key, {**doc, "count": 1, "window": minute})
    except Exception as e:  # the refusal must still be raised by the caller
        log.warning("could not audit a refusal (%s): %s", action, type(e).__name__)


def flush_refusals(project: ProjectHandle) -> int:
    """Write every pending aggregated refusal count now; returns how many entries were written."""
    agg = project.audit.refusals
    with agg.lock:
        due = _due(agg, None)
    n = 0
    for k, d in due:
        try:
            _write(project, k, d)
            n += 1
        except Exception as e:
            log.warning("could not audit aggregated refusals (%s): %s", k[1], type(e).__name__)
    return n
