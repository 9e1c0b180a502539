"""Connectors: what jitpam applied in each target system, and how each connector's passes went

``connector_memberships`` holds one row per membership jitpam added through a connector
(``origin = 'added'``: removed when no grant needs it) or found there already when a grant
first needed it (``'pre_existing'``: never removed), with the user it stands for; ``pending``
names the change being made to it (``add`` or ``remove``: marked before, cleared after).
``connector_states``
holds one row per connector that ran: its lease (one worker at a time), the digests of what was
needed and of the configuration at its last pass, failures in a row and the next retry, and the
changes that failed and the drift found, as JSON lists.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jitpam.adapters.sql.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    moment = jitpam.adapters.sql.models.UTCDateTime(timezone=True)
    op.create_table(
        "connector_memberships",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=1024), nullable=False),
        sa.Column("member", sa.String(length=1024), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("upn", sa.String(length=256), nullable=True),
        sa.Column("recorded_at", moment, nullable=False),
        sa.Column("pending", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_connector_memberships_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint(
            "org_id", "connector", "target", "member", name=op.f("pk_connector_memberships")
        ),
    )
    op.create_table(
        "connector_states",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("lease_until", moment, nullable=True),
        sa.Column("lease_owner", sa.String(length=36), nullable=True),
        sa.Column("wanted_digest", sa.String(length=64), nullable=False),
        sa.Column("config_digest", sa.String(length=64), nullable=False),
        sa.Column("last_run_at", moment, nullable=True),
        sa.Column("last_success_at", moment, nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", moment, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("alerted_at", moment, nullable=True),
        sa.Column("failing", sa.Text(), nullable=False),
        sa.Column("drift", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_connector_states_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("org_id", "connector", name=op.f("pk_connector_states")),
    )


def downgrade() -> None:
    op.drop_table("connector_states")
    op.drop_table("connector_memberships")
