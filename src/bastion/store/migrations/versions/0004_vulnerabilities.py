"""Vulnerability advisories (OSV), their affected packages (indexed by normalised name) and per-version results.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vuln_advisories",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("modified", sa.String(40), nullable=False),
        sa.Column("published", sa.String(40), nullable=True),
        sa.Column("withdrawn", sa.String(40), nullable=True),
        sa.Column("aliases_json", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("vector", sa.Text, nullable=True),
        sa.Column("record_digest", sa.String(80), nullable=False),
        sa.Column("import_digest", sa.String(80), nullable=False),
        sa.Column("imported_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "vuln_affected",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("advisory_id", sa.String(200), nullable=False),
        sa.Column("package", sa.String(200), nullable=False),
        sa.Column("ranges_json", sa.Text, nullable=False),
        sa.Column("versions_json", sa.Text, nullable=False),
    )
    op.create_index("ix_vuln_affected_package", "vuln_affected", ["package"])
    op.create_index("ix_vuln_affected_advisory", "vuln_affected", ["advisory_id"])
    op.create_table(
        "vuln_results",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("checked_at", sa.String(40), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("max_severity", sa.String(16), nullable=True),
        sa.Column("matches_json", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vuln_results")
    op.drop_index("ix_vuln_affected_advisory", table_name="vuln_affected")
    op.drop_index("ix_vuln_affected_package", table_name="vuln_affected")
    op.drop_table("vuln_affected")
    op.drop_table("vuln_advisories")
