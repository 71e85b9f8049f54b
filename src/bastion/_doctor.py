"""`bastion doctor`: is this folder's deployment reachable and consistent? One result per check.

Checks the settings, the metadata database (reachable, migrated), the artifact store (reachable, a probe
written and read back, the newest model's blob present), the keys and the optional extras a setting needs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bastion.errors import BastionError

__all__ = ["Check", "run_doctor"]

log = logging.getLogger("bastion.doctor")

OK, WARN, FAIL = "ok", "warn", "fail"
_PROBE = b"bastion doctor probe v1\n"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: str  # ok | warn | fail
    detail: str
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timed(name: str, fn: Callable[[], tuple[str, str]]) -> Check:
    t0 = time.monotonic()
    try:
        status, detail = fn()
    except BastionError as e:
        status, detail = FAIL, e.message.splitlines()[0] if e.message else type(e).__name__
    except Exception as e:  # a check must report, never crash the report
        log.debug("doctor check %s failed", name, exc_info=True)
        status, detail = FAIL, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return Check(name, status, detail, round(time.monotonic() - t0, 3))


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_doctor(root: str | Path | None = None) -> list[Check]:
    """Run every check for the project at ``root`` (default: nearest above the cwd); never raises."""
    from bastion.config import load_settings
    from bastion.store.db import HEAD_REVISION, Database, _redact

    checks: list[Check] = []
    state: dict[str, Any] = {}

    def settings() -> tuple[str, str]:
        s = load_settings(root)
        state["settings"] = s
        if not (s.root / "bastion.toml").is_file() and not s.home_path.is_dir():
            return FAIL, f"no Bastion project at {s.root}: run `bastion init` there"
        return OK, f"project {s.root} (bastion.toml, BASTION_* variables)"

    checks.append(_timed("settings", settings))
    s = state.get("settings")
    if s is None or checks[-1].status == FAIL:
        return checks

    def extras() -> tuple[str, str]:
        need: list[tuple[str, str, str]] = []
        if s.db_url.startswith("postgresql"):
            need.append(("psycopg", "postgres", "database_url is PostgreSQL"))
        scheme = s.artifacts.split("://", 1)[0] if "://" in s.artifacts else "file"
        if scheme in {"s3", "s3a"}:
            need.append(("s3fs", "s3fs", "artifacts_url is S3"))
        if s.engine == "dask":
            need.append(("distributed", "dask", "engine is dask"))
        missing = [f"{mod} (pip install 'bastion-mlops[{extra}]'; {why})" for mod, extra, why in need
                   if not _has(mod)]
        if missing:
            return FAIL, "missing: " + "; ".join(missing)
        return OK, "installed: " + (", ".join(m for m, _, _ in need) if need else "none needed")

    checks.append(_timed("extras", extras))

    def database() -> tuple[str, str]:
        db = Database(s.db_url, migrate=False)
        state["db"] = db
        rev = db.current_revision()
        where = _redact(s.db_url)
        if rev is None:
            return WARN, f"{where} reachable, not initialised yet (the first command migrates it)"
        if rev != HEAD_REVISION:
            return WARN, f"{where} at schema {rev}, this Bastion expects {HEAD_REVISION} (migrated on next use)"
        return OK, f"{where} ({db.dialect}) reachable, schema {rev}"

    checks.append(_timed("database", database))

    def store() -> tuple[str, str]:
        from bastion.store.blobs import open_blob_store

        blobs = open_blob_store(s.artifacts, storage_options=s.storage_options)
        state["blobs"] = blobs
        blobs.check()
        digest = blobs.put_bytes(_PROBE)
        if blobs.get_bytes(digest, what="the doctor's probe") != _PROBE:
            return FAIL, f"{blobs.describe()}: the probe read back differs"
        return OK, f"{blobs.describe()} reachable, probe written and read back"

    checks.append(_timed("artifacts", store))

    db_ok = checks[-2].status != FAIL and "db" in state
    if db_ok and "blobs" in state and checks[-1].status != FAIL:

        def shared() -> tuple[str, str]:
            from sqlalchemy import select

            from bastion.store.schema import models

            with state["db"].read() as conn:
                try:
                    row = conn.execute(
                        select(models.c.name, models.c.version, models.c.digest)
                        .where(models.c.deleted_at.is_(None)).order_by(models.c.id.desc()).limit(1)
                    ).first()
                except Exception:  # tables not created yet
                    row = None
            if row is None:
                return OK, "no model registered yet"
            if not state["blobs"].exists(str(row.digest)):
                return FAIL, (f"model {row.name}:{row.version} is in the database but its artifact is not in "
                              f"{state['blobs'].describe()}: every folder sharing the database must share the "
                              "artifact store")
            return OK, f"newest model {row.name}:{row.version} found in the artifact store"

        checks.append(_timed("consistency", shared))

    def keys() -> tuple[str, str]:
        parts: list[str] = []
        status = OK
        if db_ok and checks[2].status == OK:
            from bastion.crypto.signing.keys import list_signing_keys

            class _P:  # the minimum the keyring needs: settings and the database
                def __init__(self) -> None:
                    self.settings = s
                    self.db = state["db"]

            recs = list_signing_keys(_P())  # type: ignore[arg-type]  # a partial handle, enough for the keyring
            active = [r for r in recs if r.status == "active"]
            here = [r for r in active if r.key_file and (s.home_path / "keys" / "signing" / r.key_file).is_file()]
            parts.append(f"{len(active)} active signing key(s), {len(here)} with a private key in this folder")
        from bastion.crypto.keys.env import ENV_VAR

        mk_id: str | None = None
        if os.environ.get(ENV_VAR):
            from bastion.crypto.keys.env import EnvKeyProvider

            mk_id = EnvKeyProvider().key_id
            parts.append(f"data master key from {ENV_VAR}")
        elif s.key_path.is_file():
            try:  # the key id is public in the key file: no passphrase needed to compare
                mk_id = str(json.loads(s.key_path.read_text(encoding="utf-8")).get("key_id") or "") or None
            except (OSError, ValueError):
                mk_id = None
            parts.append("data master key file present")
        else:
            parts.append("no data master key here (needed only to protect or reveal data)")
        if db_ok and checks[2].status == OK:
            from sqlalchemy import select

            from bastion.store.schema import data_keys

            try:
                with state["db"].read() as conn:
                    wraps = [json.loads(w) for (w,) in conn.execute(select(data_keys.c.wraps_json))]
            except Exception:  # table not created yet (older schema): nothing shared yet
                wraps = []
            if wraps and mk_id is not None:
                foreign = sum(1 for w in wraps if mk_id not in w)
                if foreign:
                    status = WARN
                    parts.append(f"{foreign} of {len(wraps)} shared data key(s) are not wrapped for this machine's "
                                 f"master key {mk_id}: protected data cannot be revealed here")
                else:
                    parts.append(f"{len(wraps)} shared data key(s), all wrapped for this machine's master key")
            elif wraps:
                parts.append(f"{len(wraps)} shared data key(s) in the database")
        return status, "; ".join(parts)

    checks.append(_timed("keys", keys))
    if "db" in state:
        state["db"].dispose()
    return checks
