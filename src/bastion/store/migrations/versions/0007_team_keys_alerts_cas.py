"""Team state that still lived on one disk: wrapped data keys, the alert delivery log, trusted CA certificates.

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("key_id", sa.String(80), primary_key=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("wraps_json", sa.Text, nullable=False),
    )
    op.create_table(
        "alert_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_alert_log_alert_id", "alert_log", ["alert_id"])
    op.create_index("ix_alert_log_model", "alert_log", ["model"])
    op.create_table(
        "trusted_cas",
        sa.Column("fingerprint", sa.String(71), primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("pem", sa.Text, nullable=False),
        sa.Column("added_at", sa.String(40), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trusted_cas")
    op.drop_index("ix_alert_log_model", table_name="alert_log")
    op.drop_index("ix_alert_log_alert_id", table_name="alert_log")
    op.drop_table("alert_log")
    op.drop_table("data_keys")
