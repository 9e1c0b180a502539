"""separation of duties: who made what a vote depends on

Who created or set the credentials of each account (``account_stewards``), who added each group
membership, who last set a policy's approver group, approval type and approvals required, who
last set the organization's default approver group, who last set a policy's eligible requesters,
and who designated each system account.
Existing rows get no maker (NULL): the rule cannot know who made them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitpam.adapters.sql.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_stewards",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("steward_id", sa.Uuid(), nullable=False),
        sa.Column("how", sa.String(length=16), nullable=False),
        sa.Column("at", jitpam.adapters.sql.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_account_stewards_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["steward_id"], ["users.id"], name=op.f("fk_account_stewards_steward_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_stewards_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "steward_id", "how", name=op.f("pk_account_stewards")),
    )
    op.create_index(
        op.f("ix_account_stewards_steward_id"), "account_stewards", ["steward_id"], unique=False
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("added_by", sa.Uuid(), nullable=True))
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("default_approver_group_set_by", sa.Uuid(), nullable=True))
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approver_group_set_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("approval_type_set_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("approvals_required_set_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("eligible_set_by", sa.Uuid(), nullable=True))
    with op.batch_alter_table("system_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("designated_by", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("system_accounts", schema=None) as batch_op:
        batch_op.drop_column("designated_by")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_column("eligible_set_by")
        batch_op.drop_column("approvals_required_set_by")
        batch_op.drop_column("approval_type_set_by")
        batch_op.drop_column("approver_group_set_by")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("default_approver_group_set_by")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_column("added_by")
    op.drop_index(op.f("ix_account_stewards_steward_id"), table_name="account_stewards")
    op.drop_table("account_stewards")
