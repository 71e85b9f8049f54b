"""Table definitions of the metadata database (SQLAlchemy Core).

Changes here need an Alembic migration in ``store/migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("fmt", String(32), nullable=False),
    Column("rows", BigInteger, nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("schema_json", Text, nullable=False),
    Column("stats_json", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("tags_json", Text, nullable=False, default="{}"),
    Column("derived_from_json", Text, nullable=False, default="[]"),
    Column("extra_json", Text, nullable=False, default="{}"),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("deleted_at", String(40), nullable=True),
    Column("deleted_by", String(200), nullable=True),
    UniqueConstraint("name", "version", name="uq_datasets_name_version"),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("artifact_kind", String(16), nullable=False),
    Column("artifact_name", String(255), nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("framework", String(64), nullable=False),
    Column("flavor", String(64), nullable=False),
    Column("metrics_json", Text, nullable=False, default="{}"),
    Column("params_json", Text, nullable=False, default="{}"),
    Column("tags_json", Text, nullable=False, default="{}"),
    Column("description", Text, nullable=False, default=""),
    Column("datasets_json", Text, nullable=False, default="[]"),
    Column("parent", String(160), nullable=True),
    Column("code_json", Text, nullable=False, default="{}"),
    Column("environment_digest", String(80), nullable=True),
    Column("scan_status", String(16), nullable=False, default="unscanned"),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("deleted_at", String(40), nullable=True),
    Column("deleted_by", String(200), nullable=True),
    UniqueConstraint("name", "version", name="uq_models_name_version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("updated_by", String(200), nullable=False),
)

# Every promote pushes an entry; rollback deactivates the top one. The alias points at the top active entry.
alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("active", Integer, nullable=False, default=1),
    Column("at", String(40), nullable=False),
    Column("by", String(200), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_alias_history_lookup", "kind", "name", "alias", "active", "id"),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject_kind", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("doc_kind", String(64), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
    # documents up to INLINE_LIMIT bytes live here (verified against ``digest`` on read); larger ones are blobs
    Column("body", Text, nullable=True),
    Index("ix_attachments_subject", "subject_kind", "name", "version", "doc_kind", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("ts", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("details_json", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_actor", "actor", "seq"),
    Index("ix_audit_log_action", "action", "seq"),
    Index("ix_audit_log_subject", "subject", "seq"),
)

# Vulnerability advisories (OSV, PyPI ecosystem) and what they match in each model version's environment.
vuln_advisories = Table(
    "vuln_advisories",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("modified", String(40), nullable=False),
    Column("published", String(40), nullable=True),
    Column("withdrawn", String(40), nullable=True),
    Column("aliases_json", Text, nullable=False, default="[]"),
    Column("summary", Text, nullable=False, default=""),
    Column("severity", String(16), nullable=False, default="unknown"),
    Column("score", Float, nullable=True),
    Column("vector", Text, nullable=True),
    Column("record_digest", String(80), nullable=False),
    Column("import_digest", String(80), nullable=False),
    Column("imported_at", String(40), nullable=False),
)

vuln_affected = Table(
    "vuln_affected",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("advisory_id", String(200), nullable=False),
    Column("package", String(200), nullable=False),  # PEP 503 normalised
    Column("ranges_json", Text, nullable=False, default="[]"),
    Column("versions_json", Text, nullable=False, default="[]"),
    Index("ix_vuln_affected_package", "package"),
    Index("ix_vuln_affected_advisory", "advisory_id"),
)

vuln_results = Table(
    "vuln_results",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("checked_at", String(40), nullable=False),
    Column("count", Integer, nullable=False, default=0),
    Column("max_severity", String(16), nullable=True),
    Column("matches_json", Text, nullable=False, default="[]"),
)

# Dashboard users, their server-side sessions and the login throttle (issue 15): shared by every worker
# and every dashboard process of the project, and surviving restarts.
ui_users = Table(
    "ui_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("pw_hash", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("changed_at", String(40), nullable=False),
)

ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 of the cookie value; the value is never stored
    Column("user_name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_ui_sessions_user", "user_name"),
    Index("ix_ui_sessions_expires", "expires_at"),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("scope", String(8), primary_key=True),  # "addr", "user" or "pair" (user + " " + addr)
    Column("key", String(200), primary_key=True),
    Column("window_start", Float, nullable=False),
    Column("failures", Integer, nullable=False),
    Index("ix_login_throttle_window", "window_start"),
)

# API keys of the model servers: only a SHA-256 digest of each key; revocation is a column, so every replica
# sees it on its next refresh.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(8), primary_key=True),
    Column("seq", Integer, nullable=False),  # creation order (writers are serialized)
    Column("name", String(64), nullable=False),
    Column("roles_json", Text, nullable=False),
    Column("digest", String(71), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("revoked_at", String(40), nullable=True),
    Column("revoked_by", String(200), nullable=True),
    Column("revoke_reason", Text, nullable=False, default=""),
    Index("ix_api_keys_name", "name"),
)

# Small shared JSON documents read as a whole (the public signing keyring): one row per document, with a
# counter bumped on every write so readers can tell cheaply that it changed.
shared_documents = Table(
    "shared_documents",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("body", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("updated_by", String(200), nullable=False),
)

# Data keys of the team (envelope encryption): only wrapped key material, each wrap AEAD-bound to the key's id,
# purpose, scope and the deployment; the key-encryption key stays on each machine (key file or environment).
data_keys = Table(
    "data_keys",
    metadata,
    Column("key_id", String(80), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column("scope", String(200), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("wraps_json", Text, nullable=False),  # {master key id: base64(nonce + AES-GCM ciphertext)}
)

# The alert delivery log of every machine: alerts raised and each sink's delivery outcome (the records of the
# former local alerts.jsonl, in order).
alert_log = Table(
    "alert_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # "alert" or "delivery"
    Column("alert_id", String(64), nullable=False),
    Column("model", String(200), nullable=False, default=""),
    Column("created", String(40), nullable=False),
    Column("body", Text, nullable=False),  # the record as JSON
    Index("ix_alert_log_alert_id", "alert_id"),
    Index("ix_alert_log_model", "model"),
)

# Own-CA certificates trusted for certificate-mode signatures. Public, but a row counts only while the audit
# chain's newest add/remove entry for its fingerprint is an add (a row inserted behind its back is ignored).
trusted_cas = Table(
    "trusted_cas",
    metadata,
    Column("fingerprint", String(71), primary_key=True),  # sha256:<hex of the DER certificate>
    Column("subject", Text, nullable=False),
    Column("pem", Text, nullable=False),
    Column("added_at", String(40), nullable=False),
    Column("added_by", String(200), nullable=False),
)
