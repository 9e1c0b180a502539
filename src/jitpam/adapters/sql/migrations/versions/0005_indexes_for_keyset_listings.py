"""indexes for keyset listings at scale

Every listing reads an index in its own (time, id) order from the cursor on: requests by status
and by requester, authorizations by start (history, everyone's or one user's) and by end (active
grants), the outbox by organization; a role's holders a page at a time (standing assignments by
target, just-in-time grants by target and end).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 00:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_requester")
        batch_op.create_index(
            "ix_requests_requester", ["org_id", "requester_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_requests_status", ["org_id", "status", "created_at", "id"], unique=False
        )
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.create_index("ix_authorizations_start", ["org_id", "start_at", "id"], unique=False)
        batch_op.create_index(
            "ix_authorizations_user_start", ["org_id", "user_id", "start_at", "id"], unique=False
        )
        batch_op.create_index("ix_authorizations_end", ["org_id", "end_at", "id"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_org_created", ["org_id", "created_at", "id"], unique=False)
    # A role's holders a page at a time: standing assignments, then just-in-time grants.
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_assignments_target",
            ["org_id", "target_kind", "target_key", "created_at", "id"],
            unique=False,
        )
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_authorizations_target", ["org_id", "type", "target", "end_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.drop_index("ix_authorizations_target")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_target")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_org_created")
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.drop_index("ix_authorizations_end")
        batch_op.drop_index("ix_authorizations_user_start")
        batch_op.drop_index("ix_authorizations_start")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_status")
        batch_op.drop_index("ix_requests_requester")
        batch_op.create_index(
            "ix_requests_requester", ["org_id", "requester_id", "status"], unique=False
        )
