"""SCIM: who disabled a user, and one identity provider id per user and per group

``users.disabled_by_hand`` says that an administrator disabled the user (Set-User), which SCIM
does not undo: only an administrator enables them again. The identity provider's ids are unique
in an organization, for users and for groups (``ix_users_external_id``,
``ix_groups_external_id``; a missing id, NULL, repeats freely). Existing users were not
disabled by hand as far as jitpam knows. An organization that already holds two users (or two
groups) with the same id cannot be migrated until one of them is changed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("disabled_by_hand", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index("ix_users_external_id", "users", ["org_id", "external_id"], unique=True)
    op.create_index("ix_groups_external_id", "groups", ["org_id", "external_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_groups_external_id", table_name="groups")
    op.drop_index("ix_users_external_id", table_name="users")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("disabled_by_hand")
