"""Alerts from monitoring results: rules from the ``monitoring.alerts`` config; delivery recorded first in the
alert log (the metadata database's ``alert_log`` table, shared by every machine of a deployment, and/or a local
JSON-lines file) and then to every configured sink (``bastion.monitor.sinks``: file, signed webhook, Slack,
e-mail, Alertmanager, plugins), each retried with backoff; optional automatic rollback of the model alias, audited.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import BastionError
from bastion.monitor.config import AlertsConfig, RollbackConfig, WebhookConfig
from bastion.monitor.drift.interface import _jsonable_dict
from bastion.monitor.sinks import AlertSink, SinkResult, build_sink, with_retries
from bastion.monitor.sinks._http import post
from bastion.monitor.sinks.file import append_jsonl
from bastion.monitor.sinks.webhook import SIGNATURE_HEADER, sign_body

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle
    from bastion.store.db import Database

__all__ = [
    "SIGNATURE_HEADER",
    "Alert",
    "Delivery",
    "configured_sinks",
    "deliver",
    "evaluate_alerts",
    "maybe_rollback",
    "pending_alerts",
    "post_webhook",
    "read_alert_log",
    "sign_body",
    "stored_alerts",
    "stored_pending_alerts",
]

log = logging.getLogger("bastion.monitor")
_SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Alert:
    """One alert raised by a rule for one model version and window."""

    rule: str
    signal: str  # data_drift | prediction_drift | performance | anomaly | attack
    severity: str
    model: str
    message: str
    window_start: str | None = None
    window_end: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_dict(self) -> dict[str, Any]:
        return _jsonable_dict(
            {
                "schema_version": 1,
                "kind": "alert",
                "id": self.id,
                "rule": self.rule,
                "signal": self.signal,
                "severity": self.severity,
                "model": self.model,
                "message": self.message,
                "window_start": self.window_start,
                "window_end": self.window_end,
                "details": self.details,
                "created": self.created,
            }
        )


@dataclass(frozen=True)
class Delivery:
    alert_id: str
    destination: str
    ok: bool
    attempts: int
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def evaluate_alerts(result: dict[str, Any], config: AlertsConfig, *, model: str) -> list[Alert]:
    """Alerts the rules raise for one monitoring result (the ``to_dict()`` of a window or report)."""
    drift = result.get("drift") or {}
    perf = result.get("performance") or []
    anomaly = result.get("anomaly") or {}
    attacks = result.get("attacks") or []
    start, end = result.get("window_start"), result.get("window_end")
    alerts = []
    for rule in config.rules:
        msg, details = "", {}
        if rule.when == "data_drift":
            drifted = drift.get("drifted_features") or []
            if drift.get("dataset_drift") and len(drifted) >= rule.min_drifted_features:
                msg = f"Data drift in {len(drifted)} feature(s): {', '.join(drifted[:10])}"
                missing = drift.get("missing_in_current") or []
                if missing:
                    msg += f"; missing columns: {', '.join(missing)}"
                details = {"drifted_features": drifted, "drift_share": drift.get("drift_share"),
                           "missing_in_current": missing}
        elif rule.when == "prediction_drift":
            if drift.get("prediction_drift"):
                cols = [f["column"] for f in drift.get("features", []) if f.get("prediction") and f.get("drifted")]
                msg, details = f"Prediction drift in {', '.join(cols)}", {"columns": cols}
        elif rule.when == "performance":
            breaches = [b for w in perf for b in w.get("breaches", [])]
            if breaches:
                msg = "Performance below floor: " + "; ".join(
                    f"{b['metric']}={b['value']:.3f} < {b['floor']}" + (" (estimated)" if b.get("estimated") else "")
                    for b in breaches[:5]
                )
                details = {"breaches": breaches}
        elif rule.when == "anomaly":
            if anomaly.get("exceeded"):
                msg = f"{anomaly['share']:.1%} of inputs are anomalous (limit {anomaly['max_share']:.1%})"
                details = dict(anomaly)
        elif rule.when == "attack" and attacks:
            subjects = sorted({a["subject"] for a in attacks})
            msg = f"{len(attacks)} attack finding(s) for {', '.join(subjects[:10])}: " + "; ".join(
                a["message"] for a in attacks[:3]
            )
            details = {"findings": attacks}
        if msg:
            alerts.append(Alert(rule.name, rule.when, rule.severity, model, msg, start, end, details))
    return alerts


def post_webhook(
    body: bytes, cfg: WebhookConfig, secret: bytes, *, sleep: Callable[[float], None] = time.sleep, alert_id: str = ""
) -> tuple[bool, int, str]:
    """POST ``body`` signed with ``secret``, with retries and backoff; returns ``(ok, attempts, last_error)``.

    Kept for callers of the pre-sink API; new code configures a ``webhook`` sink.
    """
    headers = {SIGNATURE_HEADER: sign_body(body, secret), "X-Bastion-Alert-Id": alert_id}
    r = with_retries(lambda: post(cfg.url, body, headers, timeout=cfg.timeout), retries=cfg.retries,
                     backoff=cfg.backoff, sleep=sleep)
    return r.ok, r.attempts, r.error


def _append_jsonl(path: Path, doc: dict[str, Any]) -> None:
    append_jsonl(path, doc)


def _store(db: Database, doc: dict[str, Any]) -> None:
    """One alert-log record into the database (committed before any sink is tried)."""
    from bastion.store.schema import alert_log

    alert_id = str(doc.get("id") if doc.get("kind") == "alert" else doc.get("alert_id", ""))
    with db.write() as conn:
        conn.execute(alert_log.insert().values(
            kind=str(doc.get("kind", "")), alert_id=alert_id[:64], model=str(doc.get("model") or "")[:200],
            created=str(doc.get("created") or datetime.now(UTC).isoformat())[:40],
            body=json.dumps(doc, sort_keys=True, default=str)))


def stored_alerts(
    db: Database, *, model: str | None = None, kind: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Records of the shared alert log (alerts and delivery records of every machine), oldest first.

    ``model``: only alerts about that model (``name`` or ``name:version``) and their delivery records;
    ``limit``: only the newest that many records.
    """
    from sqlalchemy import or_, select

    from bastion.store.schema import alert_log

    q = select(alert_log.c.body)
    if kind is not None:
        q = q.where(alert_log.c.kind == kind)
    if model is not None:
        ids = select(alert_log.c.alert_id).where(
            alert_log.c.kind == "alert",
            or_(alert_log.c.model == model, alert_log.c.model.startswith(model + ":", autoescape=True)))
        q = q.where(alert_log.c.alert_id.in_(ids))
    q = q.order_by(alert_log.c.id.desc() if limit else alert_log.c.id)
    if limit:
        q = q.limit(limit)
    with db.read() as conn:
        bodies = [b for (b,) in conn.execute(q)]
    if limit:
        bodies.reverse()
    out = []
    for b in bodies:
        try:
            out.append(json.loads(b))
        except ValueError:
            log.warning("alert log: skipped an unreadable record")
    return out


def _pending(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    delivered = {(r["alert_id"], r.get("destination")) for r in recs if r.get("kind") == "delivery" and r.get("ok")}
    failed = {(r["alert_id"], r.get("destination")) for r in recs if r.get("kind") == "delivery" and not r.get("ok")}
    waiting = {aid for aid, dest in failed - delivered}
    return [r for r in recs if r.get("kind") == "alert" and r["id"] in waiting]


def stored_pending_alerts(db: Database) -> list[dict[str, Any]]:
    """Alerts in the shared log that some sink has not taken yet (a failed delivery and no later success)."""
    return _pending(stored_alerts(db))


def read_alert_log(path: str | Path) -> list[dict[str, Any]]:
    """Every record of the alert log (alerts and delivery records), in order."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    with open(p, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("alert log: skipped a torn line")
    return out


def pending_alerts(path: str | Path) -> list[dict[str, Any]]:
    """Alerts in the log that some sink has not taken yet (a failed delivery and no later success)."""
    return _pending(read_alert_log(path))


def configured_sinks(config: AlertsConfig, *, root: str | Path | None = None) -> list[AlertSink]:
    """The sink instances ``config`` names (the ``webhook:`` shorthand first), ready to send."""
    return [build_sink(c, root=root) for c in config.all_sinks()]


def deliver(
    alerts: list[Alert],
    config: AlertsConfig,
    *,
    log_path: str | Path | None = None,
    db: Database | None = None,
    sleep: Callable[[float], None] = time.sleep,
    root: str | Path | None = None,
    sinks: list[AlertSink] | None = None,
) -> list[Delivery]:
    """Record each alert in the alert log, then hand it to every configured sink.

    This is the one function to call to raise alerts (monitoring, vulnerability checks, re-scans).
    The alert log is the database's ``alert_log`` table (``db``: shared by every machine of a deployment)
    and/or a local JSON-lines file (``log_path``, fsynced); at least one is needed. The record is written
    before any network call, so a receiver that is down loses nothing; each sink's outcome (after its
    retries) is recorded the same way as a ``delivery`` record. ``root`` resolves relative file-sink paths
    (the project root); ``sinks`` overrides the config's.
    """
    if log_path is None and db is None:
        raise ValueError("deliver() needs an alert log: db= (the project database) and/or log_path=.")
    path = Path(log_path) if log_path is not None else None

    def record(doc: dict[str, Any]) -> None:
        if db is not None:
            _store(db, doc)
        if path is not None:
            _append_jsonl(path, doc)

    targets = configured_sinks(config, root=root) if sinks is None else sinks
    out = []
    for a in alerts:
        doc = a.to_dict()
        record(doc)
        out.append(Delivery(a.id, "log", True, 1))
        for sink in targets:
            try:
                r = sink.send(doc, sleep=sleep)
            except Exception as e:  # a faulty plugin must not lose the other sinks' deliveries
                r = SinkResult(False, 1, f"sink raised {type(e).__name__}")
                log.warning("alert sink %s raised %s", sink.destination, type(e).__name__)
            d = Delivery(a.id, sink.destination, r.ok, r.attempts, r.error)
            if not d.ok:
                log.warning("alert %s not delivered to %s: %s (kept in the alert log)", a.id, d.destination, d.error)
            record({"schema_version": 1, "kind": "delivery", "created": datetime.now(UTC).isoformat(), **d.to_dict()})
            out.append(d)
    return out


def maybe_rollback(
    project: ProjectHandle,
    model_name: str,
    alerts: list[Alert],
    cfg: RollbackConfig,
    *,
    monitored_version: int | None = None,
) -> dict[str, Any] | None:
    """Roll back ``model_name@alias`` when an alert matches the rollback config; audited.

    With ``monitored_version``, only while the alias still points at the version the alerts are about: a
    later window of the same traffic must not roll back a second time.
    """
    if not cfg.enabled:
        return None
    floor = _SEVERITY_ORDER[cfg.min_severity]
    trigger = [a for a in alerts if a.signal in cfg.on and _SEVERITY_ORDER[a.severity] >= floor]
    if not trigger:
        return None
    rules = sorted({a.rule for a in trigger})
    if monitored_version is not None:
        try:
            current = project.get_model(f"{model_name}@{cfg.alias}").version
        except BastionError:
            current = None
        if current != monitored_version:
            return {"model": model_name, "alias": cfg.alias, "rules": rules, "skipped": True,
                    "reason": f"{model_name}@{cfg.alias} no longer points at version {monitored_version}"}
    result = project.rollback(model_name, alias=cfg.alias, reason=f"monitoring alerts: {', '.join(rules)}")
    target = getattr(result, "version", None) if result is not None else None
    details = {"alias": cfg.alias, "alerts": [a.id for a in trigger], "rules": rules, "to_version": target}
    project.audited("monitor.rollback", f"{model_name}@{cfg.alias}", details)
    log.warning("rolled back %s@%s after alerts %s", model_name, cfg.alias, details["rules"])
    return {"model": model_name, **details}
