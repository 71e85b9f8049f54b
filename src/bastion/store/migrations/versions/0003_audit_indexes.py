"""Indexes for searching the audit log by actor, action and subject (the dashboard's filters).

Revision ID: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "seq"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "seq"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject", "seq"])


def downgrade() -> None:
    for name in ("ix_audit_log_subject", "ix_audit_log_action", "ix_audit_log_actor"):
        op.drop_index(name, table_name="audit_log")
