"""customer lockbox: lockbox requests, the installation's operator, customers' lockbox settings

Customer Lockbox (issue 16): the operator organization's engineers file requests to reach a
customer's data (``lockbox_requests``, listed newest first by customer, by operator and by
engineer, read by the check per engineer and customer, and swept when the deadline or the end
passes); ``installation_operator`` holds at most one row naming the operator organization; each
organization gains its lockbox settings. Existing organizations get the defaults: approval not
required, access of at most 4 hours.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitpam.adapters.sql.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "lockbox_approval_required",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("lockbox_max_hours", sa.Integer(), server_default="4", nullable=False)
        )
    op.create_table(
        "installation_operator",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("since", jitpam.adapters.sql.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_installation_operator_single_row")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_installation_operator_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation_operator")),
    )
    moment = jitpam.adapters.sql.models.UTCDateTime(timezone=True)
    op.create_table(
        "lockbox_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_org_id", sa.Uuid(), nullable=False),
        sa.Column("operator_org_id", sa.Uuid(), nullable=False),
        sa.Column("requester_id", sa.Uuid(), nullable=False),
        sa.Column("requester_upn", sa.String(length=256), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("case_reference", sa.String(length=64), nullable=False),
        sa.Column("duration_hours", sa.Integer(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("pending_until", moment, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_at", moment, nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decision_comment", sa.Text(), nullable=False),
        sa.Column("start_at", moment, nullable=True),
        sa.Column("end_at", moment, nullable=True),
        sa.Column("revoked_at", moment, nullable=True),
        sa.Column("revoked_by", sa.Uuid(), nullable=True),
        sa.Column("revocation_comment", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "duration_hours > 0", name=op.f("ck_lockbox_requests_positive_duration")
        ),
        sa.ForeignKeyConstraint(
            ["customer_org_id"],
            ["organizations.id"],
            name=op.f("fk_lockbox_requests_customer_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_org_id"],
            ["organizations.id"],
            name=op.f("fk_lockbox_requests_operator_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["users.id"], name=op.f("fk_lockbox_requests_requester_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lockbox_requests")),
    )
    with op.batch_alter_table("lockbox_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lockbox_requests_customer", ["customer_org_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_lockbox_requests_operator", ["operator_org_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_lockbox_requests_requester",
            ["operator_org_id", "requester_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_lockbox_requests_check", ["customer_org_id", "requester_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_lockbox_requests_pending", ["status", "pending_until"], unique=False
        )
        batch_op.create_index("ix_lockbox_requests_end", ["status", "end_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lockbox_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_lockbox_requests_end")
        batch_op.drop_index("ix_lockbox_requests_pending")
        batch_op.drop_index("ix_lockbox_requests_check")
        batch_op.drop_index("ix_lockbox_requests_requester")
        batch_op.drop_index("ix_lockbox_requests_operator")
        batch_op.drop_index("ix_lockbox_requests_customer")
    op.drop_table("lockbox_requests")
    op.drop_table("installation_operator")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("lockbox_max_hours")
        batch_op.drop_column("lockbox_approval_required")
