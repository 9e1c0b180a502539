"""data access requests: a request's application account and the data it covers

A data access request (issue 16) is filed by a person for an application account, the subject
who receives the grant (``subject_id``, ``subject_upn``), and names the data it covers
(``resources``, a JSON array of ``kind:name`` strings). The requests of one application are
read by ``ix_requests_subject`` (its open request for a scope, its listing). Existing requests
get no subject and no resources.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 21:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its foreign key in place; a batch "move and copy" of the
        # requests table would drop it under the reviews and grants that refer to it (the
        # connection enforces foreign keys).
        op.execute(
            "ALTER TABLE requests ADD COLUMN subject_id CHAR(32) "
            "CONSTRAINT fk_requests_subject_id_users REFERENCES users (id)"
        )
    else:
        op.add_column("requests", sa.Column("subject_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f("fk_requests_subject_id_users"), "requests", "users", ["subject_id"], ["id"]
        )
    op.add_column("requests", sa.Column("subject_upn", sa.String(length=256), nullable=True))
    op.add_column(
        "requests", sa.Column("resources", sa.Text(), server_default="[]", nullable=False)
    )
    op.create_index(
        "ix_requests_subject",
        "requests",
        ["org_id", "subject_id", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_requests_subject", table_name="requests")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        if op.get_bind().dialect.name != "sqlite":
            batch_op.drop_constraint(batch_op.f("fk_requests_subject_id_users"), type_="foreignkey")
        batch_op.drop_column("resources")
        batch_op.drop_column("subject_upn")
        batch_op.drop_column("subject_id")
