"""Initial schema: datasets, models, aliases with history, attachments, audit log.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op

from bastion.store.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    metadata.drop_all(bind)
