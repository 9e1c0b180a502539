"""SCIM provisioning: who manages users and groups, and the approver groups SCIM may fill

Users and groups get the identity provider's id (``external_id``), who manages them
(``source``: ``jitpam``, or ``scim`` once SCIM created or took them over) and when they last
changed (``modified_at``); users also whether SCIM deleted them (``scim_deleted``: disabled,
hidden from SCIM, kept for the audit log). An organization's ``synced_approver_groups`` (a JSON
array of group ids) lists the approver groups whose memberships it lets SCIM set. Existing rows
are jitpam's, not deleted, and no approver group is opted in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitpam.adapters.sql.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("users", "groups"):
        op.add_column(table, sa.Column("external_id", sa.String(length=256), nullable=True))
        op.add_column(
            table,
            sa.Column("source", sa.String(length=8), server_default="jitpam", nullable=False),
        )
        op.add_column(
            table,
            sa.Column(
                "modified_at",
                jitpam.adapters.sql.models.UTCDateTime(timezone=True),
                nullable=True,
            ),
        )
    op.add_column(
        "users",
        sa.Column("scim_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "organizations",
        sa.Column("synced_approver_groups", sa.Text(), server_default="[]", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("synced_approver_groups")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("scim_deleted")
    for table in ("users", "groups"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("modified_at")
            batch_op.drop_column("source")
            batch_op.drop_column("external_id")
