"""Sign-in credentials: password hashes, API tokens, OIDC links."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    Row,
    Table,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.models import (
    ApiTokenRow,
    OidcLinkRow,
    PasswordRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.domain.tokens import ApiToken


def _token(row: ApiTokenRow | Row[Any]) -> ApiToken:
    """A token from its ORM row or a Core row of the same columns."""
    return ApiToken(
        id=row.id,
        org_id=row.org_id,
        user_id=row.user_id,
        name=row.name,
        digest=row.digest,
        created_at=row.created_at,
        expires_at=row.expires_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


# Prebuilt: every API call with a bearer token reads it.
_TOKEN_BY_DIGEST = Prepared(
    select(cast(Table, ApiTokenRow.__table__)).where(
        ApiTokenRow.__table__.c.digest == bindparam("digest")
    )
)


class SqlCredentials:
    def __init__(self, session: Session) -> None:
        self.s = session

    def password_hash(self, user_id: UUID) -> str | None:
        row = self.s.get(PasswordRow, user_id)
        return row.hash if row else None

    def set_password_hash(self, user_id: UUID, hash: str, *, at: datetime) -> None:
        row = self.s.get(PasswordRow, user_id)
        if row is None:
            self.s.add(PasswordRow(user_id=user_id, hash=hash, changed_at=at))
        else:
            row.hash, row.changed_at = hash, at
        self.s.flush()

    def add_token(self, token: ApiToken) -> None:
        self.s.add(
            ApiTokenRow(
                id=token.id,
                org_id=token.org_id,
                user_id=token.user_id,
                name=token.name,
                digest=token.digest,
                created_at=token.created_at,
                expires_at=token.expires_at,
                created_by=token.created_by,
                revoked_at=token.revoked_at,
            )
        )
        self.s.flush()

    def token_by_digest(self, digest: str) -> ApiToken | None:
        found = _TOKEN_BY_DIGEST.first(self.s, digest=digest)
        return _token(found) if found is not None else None

    def token(self, token_id: UUID) -> ApiToken | None:
        row = self.s.get(ApiTokenRow, token_id)
        return _token(row) if row else None

    def tokens(self, org_id: UUID, user_id: UUID | None) -> list[ApiToken]:
        stmt = select(ApiTokenRow).where(ApiTokenRow.org_id == org_id)
        if user_id is not None:
            stmt = stmt.where(ApiTokenRow.user_id == user_id)
        rows = self.s.scalars(stmt.order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id))
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: UUID, *, at: datetime) -> None:
        self.s.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    def revoke_all_tokens(self, user_id: UUID, *, at: datetime) -> int:
        result = self.s.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.user_id == user_id, ApiTokenRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def oidc_user(self, issuer: str, subject: str) -> UUID | None:
        row = self.s.get(OidcLinkRow, (issuer, subject))
        return row.user_id if row else None

    def link_oidc(self, issuer: str, subject: str, user_id: UUID, *, at: datetime) -> None:
        self.s.add(OidcLinkRow(issuer=issuer, subject=subject, user_id=user_id, created_at=at))
        self.s.flush()

    def unlink_oidc(self, user_id: UUID) -> int:
        result = self.s.execute(delete(OidcLinkRow).where(OidcLinkRow.user_id == user_id))
        return int(result.rowcount)  # type: ignore[attr-defined]
