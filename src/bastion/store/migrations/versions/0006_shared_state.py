"""Shared state of a team deployment in the database: API keys (hashed) with their revocations, and small
shared documents (the public signing keyring), so servers and folders on other machines see them.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(8), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("roles_json", sa.Text, nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("revoked_at", sa.String(40), nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.Column("revoke_reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_api_keys_name", "api_keys", ["name"])
    op.create_table(
        "shared_documents",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shared_documents")
    op.drop_index("ix_api_keys_name", table_name="api_keys")
    op.drop_table("api_keys")
