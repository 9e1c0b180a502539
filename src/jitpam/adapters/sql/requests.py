"""Access requests with their reviews and authorization (the grant): read, added, saved."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jitpam.adapters.sql.memo import REQUESTS, Memo, RequestAsRead
from jitpam.adapters.sql.models import (
    AuthorizationRow,
    RequestRow,
    ReviewRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.adapters.sql.request_listings import RequestListings
from jitpam.domain.check import Grant
from jitpam.domain.errors import AlreadyVoted, RequestNotPending
from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import (
    AccessRequest,
    Authorization,
    RequestStatus,
    Review,
    ReviewDecision,
)

_REQUESTS = cast(Table, RequestRow.__table__)
_REVIEWS = cast(Table, ReviewRow.__table__)
_AUTHORIZATIONS = cast(Table, AuthorizationRow.__table__)
# A request's own statements (new request, review, revocation): one row each, by its keys.
_ADD_REQUEST = Prepared(insert(_REQUESTS))
_READ_REQUEST = select(*_REQUESTS.c).where(_REQUESTS.c.id == bindparam("id"))
_GET_REQUEST = Prepared(_READ_REQUEST)
_LOCK_REQUEST = Prepared(_READ_REQUEST.with_for_update())
_REVIEWS_OF = Prepared(
    select(*_REVIEWS.c).where(_REVIEWS.c.request_id == bindparam("id")).order_by(_REVIEWS.c.at)
)
_AUTHORIZATION_OF = Prepared(
    select(*_AUTHORIZATIONS.c).where(_AUTHORIZATIONS.c.request_id == bindparam("id"))
)
_ADD_REVIEW = Prepared(insert(_REVIEWS))
_ADD_AUTHORIZATION = Prepared(insert(_AUTHORIZATIONS))
_REVOKE_AUTHORIZATION = Prepared(
    update(_AUTHORIZATIONS)
    .where(_AUTHORIZATIONS.c.id == bindparam("authorization"))
    .values(
        revoked_at=bindparam("revoked_at"),
        revoked_by=bindparam("revoked_by"),
        revocation_comment=bindparam("revocation_comment"),
    )
)
_MOVE_REQUEST = Prepared(
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("request"), _REQUESTS.c.version == bindparam("read_version"))
    .values(
        status=bindparam("status"),
        decided_at=bindparam("decided_at"),
        version=bindparam("new_version"),
    )
)
_STILL_OPEN = or_(
    and_(_REQUESTS.c.status == "pending", _REQUESTS.c.pending_until > bindparam("at")),
    and_(_REQUESTS.c.status == "approved", _AUTHORIZATIONS.c.end_at > bindparam("at")),
)
_OPEN_REQUESTS = select(*_REQUESTS.c).outerjoin(
    _AUTHORIZATIONS, _AUTHORIZATIONS.c.request_id == _REQUESTS.c.id
)
# The requester's own open request for the target (tasks, roles, role groups) ...
_OPEN_FOR = Prepared(
    _OPEN_REQUESTS.where(
        _REQUESTS.c.org_id == bindparam("org"),
        _REQUESTS.c.requester_id == bindparam("requester"),
        _REQUESTS.c.type == bindparam("type"),
        _REQUESTS.c.target == bindparam("target"),
        _STILL_OPEN,
    )
)
# ... and an application's open data access request for the scope, whoever filed it.
_OPEN_FOR_SUBJECT = Prepared(
    _OPEN_REQUESTS.where(
        _REQUESTS.c.org_id == bindparam("org"),
        _REQUESTS.c.subject_id == bindparam("subject"),
        _REQUESTS.c.type == bindparam("type"),
        _REQUESTS.c.target == bindparam("target"),
        _STILL_OPEN,
    )
)
_GRANTS = Prepared(
    select(
        _AUTHORIZATIONS.c.id,
        _AUTHORIZATIONS.c.type,
        _AUTHORIZATIONS.c.target,
        _AUTHORIZATIONS.c.start_at,
        _AUTHORIZATIONS.c.end_at,
        _AUTHORIZATIONS.c.revoked_at,
    )
    .where(
        _AUTHORIZATIONS.c.org_id == bindparam("org"),
        _AUTHORIZATIONS.c.user_id == bindparam("user"),
        _AUTHORIZATIONS.c.end_at > bindparam("at"),
        or_(
            _AUTHORIZATIONS.c.revoked_at.is_(None),
            _AUTHORIZATIONS.c.revoked_at > bindparam("at"),
        ),
    )
    # decide() names the first grant holding a role: the one that lasts longest (id ties).
    .order_by(_AUTHORIZATIONS.c.end_at.desc(), _AUTHORIZATIONS.c.id)
)


def _authorization(a: Any) -> Authorization:
    return Authorization(
        id=a.id,
        org_id=a.org_id,
        request_id=a.request_id,
        user_id=a.user_id,
        type=PolicyType(a.type),
        target=QualifiedName.parse(a.target),
        start=a.start_at,
        end=a.end_at,
        revoked_at=a.revoked_at,
        revoked_by=a.revoked_by,
        revocation_comment=a.revocation_comment,
    )


def _resources(stored: str | None) -> tuple[str, ...]:
    """The data a request covers, stored as a JSON array of "kind:name" strings."""
    found = json.loads(stored) if stored else []
    return tuple(str(r) for r in found)


def _revocation(auth: Authorization | None) -> tuple[Any, ...] | None:
    return None if auth is None else (auth.revoked_at, auth.revoked_by, auth.revocation_comment)


class SqlRequests(RequestListings):
    """A request, its reviews and its grant, read and saved as one: a save compares and sets the
    version the transaction read and writes only what changed since (``memo.RequestAsRead``)."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self._memo = Memo.of(session)

    def _assemble(self, rows: Sequence[RequestRow | Any]) -> list[AccessRequest]:
        if not rows:
            return []
        reviews: dict[UUID, list[Any]] = {}
        auths: dict[UUID, Any] = {}
        if len(rows) == 1:  # one request (its page, a review): by its key
            rid = rows[0].id
            reviews[rid] = _REVIEWS_OF.all(self.s, id=rid)
            if (a := _AUTHORIZATION_OF.first(self.s, id=rid)) is not None:
                auths[rid] = a
        else:
            ids = [r.id for r in rows]
            for rv in self.s.execute(
                select(*_REVIEWS.c).where(_REVIEWS.c.request_id.in_(ids)).order_by(_REVIEWS.c.at)
            ):
                reviews.setdefault(rv.request_id, []).append(rv)
            found = self.s.execute(
                select(*_AUTHORIZATIONS.c).where(_AUTHORIZATIONS.c.request_id.in_(ids))
            )
            auths = {a.request_id: a for a in found}
        out = []
        for row in rows:
            a = auths.get(row.id)
            auth = _authorization(a) if a is not None else None
            req = AccessRequest(
                id=row.id,
                org_id=row.org_id,
                requester_id=row.requester_id,
                requester_upn=row.requester_upn,
                policy_id=row.policy_id,
                type=PolicyType(row.type),
                target=QualifiedName.parse(row.target),
                reason=row.reason,
                duration_hours=row.duration_hours,
                approvals_required=row.approvals_required,
                created_at=row.created_at,
                pending_until=row.pending_until,
                status=RequestStatus(row.status),
                decided_at=row.decided_at,
                reviews=[
                    Review(rv.approver_id, ReviewDecision(rv.decision), rv.comment, rv.at)
                    for rv in reviews.get(row.id, ())
                ],
                authorization=auth,
                key_id=row.key_id,
                signature=row.signature,
                subject_id=row.subject_id,
                subject_upn=row.subject_upn,
                resources=_resources(row.resources),
            )
            self._memo.put(
                REQUESTS, row.id, RequestAsRead(row.version, len(req.reviews), _revocation(auth))
            )
            out.append(req)
        return out

    def add(self, request: AccessRequest) -> None:
        _ADD_REQUEST.execute(
            self.s,
            id=request.id,
            org_id=request.org_id,
            requester_id=request.requester_id,
            requester_upn=request.requester_upn,
            policy_id=request.policy_id,
            type=request.type.value,
            target=str(request.target),
            reason=request.reason,
            duration_hours=request.duration_hours,
            approvals_required=request.approvals_required,
            created_at=request.created_at,
            pending_until=request.pending_until,
            status=request.status.value,
            decided_at=request.decided_at,
            key_id=request.key_id,
            signature=request.signature,
            version=1,
            subject_id=request.subject_id,
            subject_upn=request.subject_upn,
            resources=json.dumps(list(request.resources)),
        )
        self._store_reviews_and_grant(request, RequestAsRead(1, 0, None))

    def get(self, request_id: UUID, *, for_update: bool = False) -> AccessRequest | None:
        row = (_LOCK_REQUEST if for_update else _GET_REQUEST).first(self.s, id=request_id)
        return self._assemble([row])[0] if row is not None else None

    def save(self, request: AccessRequest) -> None:
        loaded = self._memo.get(REQUESTS, request.id)
        if loaded is None:
            raise LookupError(f"{request.describe()} was not read in this transaction")
        version = loaded.version
        # Compare-and-set on the version: a row that moved since it was read is a lost race.
        moved = _MOVE_REQUEST.execute(
            self.s,
            request=request.id,
            read_version=version,
            status=request.status.value,
            decided_at=request.decided_at,
            new_version=version + 1,
        )
        if moved != 1:
            raise RequestNotPending(
                f"{request.describe()} was changed by someone else at the same time"
            )
        self._store_reviews_and_grant(request, replace(loaded, version=version + 1))

    def _store_reviews_and_grant(self, request: AccessRequest, loaded: RequestAsRead) -> None:
        stored_reviews, stored_revocation = loaded.reviews, loaded.revocation
        try:
            _ADD_REVIEW.execute_many(
                self.s,
                [
                    {
                        "request_id": request.id,
                        "approver_id": review.approver_id,
                        "decision": review.decision.value,
                        "comment": review.comment,
                        "at": review.at,
                    }
                    for review in request.reviews[stored_reviews:]
                ],
            )
        except IntegrityError:
            raise AlreadyVoted(
                f"a review of {request.describe()} by this approver already exists"
            ) from None
        auth = request.authorization
        revocation = _revocation(auth)
        if auth is not None and stored_revocation is None:
            _ADD_AUTHORIZATION.execute(
                self.s,
                id=auth.id,
                org_id=auth.org_id,
                request_id=auth.request_id,
                user_id=auth.user_id,
                type=auth.type.value,
                target=str(auth.target),
                start_at=auth.start,
                end_at=auth.end,
                revoked_at=auth.revoked_at,
                revoked_by=auth.revoked_by,
                revocation_comment=auth.revocation_comment,
            )
        elif auth is not None and revocation != stored_revocation:
            _REVOKE_AUTHORIZATION.execute(
                self.s,
                authorization=auth.id,
                revoked_at=auth.revoked_at,
                revoked_by=auth.revoked_by,
                revocation_comment=auth.revocation_comment,
            )
        self._memo.put(
            REQUESTS, request.id, RequestAsRead(loaded.version, len(request.reviews), revocation)
        )

    def open_for(
        self,
        org_id: UUID,
        requester_id: UUID,
        type: PolicyType,
        target: str,
        at: datetime,
        *,
        subject_id: UUID | None = None,
    ) -> AccessRequest | None:
        if subject_id is not None:
            row = _OPEN_FOR_SUBJECT.first(
                self.s, org=org_id, subject=subject_id, type=type.value, target=target, at=at
            )
        else:
            row = _OPEN_FOR.first(
                self.s, org=org_id, requester=requester_id, type=type.value, target=target, at=at
            )
        return self._assemble([row])[0] if row is not None else None

    def grants(self, org_id: UUID, user_id: UUID, at: datetime) -> tuple[Grant, ...]:
        rows = _GRANTS.all(self.s, org=org_id, user=user_id, at=at)
        return tuple(
            Grant(r.id, PolicyType(r.type), r.target, r.start_at, r.end_at, r.revoked_at)
            for r in rows
        )

    def lock_grant(self, authorization_id: UUID) -> Grant | None:
        row = self.s.scalars(
            select(AuthorizationRow)
            .where(AuthorizationRow.id == authorization_id)
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        ).first()
        if row is None:
            return None
        return Grant(
            row.id, PolicyType(row.type), row.target, row.start_at, row.end_at, row.revoked_at
        )

    def id_for_authorization(self, authorization_id: UUID) -> UUID | None:
        return self.s.scalar(
            select(AuthorizationRow.request_id).where(AuthorizationRow.id == authorization_id)
        )
