"""Policies and their eligible requesters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    func,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.memo import POLICIES, POLICY_FOR, Change, Memo
from jitpam.adapters.sql.models import (
    PolicyEligibleRow,
    PolicyRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.adapters.sql.queries import (
    chunks,
    contains,
    decode_cursor,
    encode_cursor,
)
from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import ApprovalType, Policy, PolicyType
from jitpam.services.ports import (
    SEARCH_WINDOW,
    Page,
)

_POLICIES = cast(Table, PolicyRow.__table__)
_POLICY_COLUMNS = select(*_POLICIES.c)
_GET_POLICY = Prepared(_POLICY_COLUMNS.where(_POLICIES.c.id == bindparam("id")))
_POLICY_FOR = Prepared(
    _POLICY_COLUMNS.where(
        _POLICIES.c.org_id == bindparam("org"),
        _POLICIES.c.type == bindparam("type"),
        _POLICIES.c.target_key == bindparam("key"),
    )
)
_ELIGIBLE = Prepared(
    select(PolicyEligibleRow.principal_kind, PolicyEligibleRow.principal_id).where(
        PolicyEligibleRow.policy_id == bindparam("policy")
    )
)


class SqlPolicies:
    def __init__(self, session: Session) -> None:
        self.s = session
        # A use case reads its policy a few times (rules, approvers, notices): once per
        # transaction, forgotten when this repository changes it.
        self._memo = Memo.of(session)

    def _policy(self, row: PolicyRow | Any) -> Policy:
        eligible = _ELIGIBLE.all(self.s, policy=row.id)
        policy = self._build(row, [(k, i) for k, i in eligible])
        self._memo.put(POLICIES, policy.id, policy)
        return policy

    def _policies(self, rows: Sequence[PolicyRow]) -> list[Policy]:
        """Policies with their eligible requesters, read in one query for them all."""
        eligible: dict[UUID, list[tuple[str, UUID]]] = {r.id: [] for r in rows}
        for chunk in chunks(eligible):
            found = self.s.execute(
                select(
                    PolicyEligibleRow.policy_id,
                    PolicyEligibleRow.principal_kind,
                    PolicyEligibleRow.principal_id,
                ).where(PolicyEligibleRow.policy_id.in_(chunk))
            )
            for policy_id, k, i in found:
                eligible[policy_id].append((k, i))
        return [self._build(r, eligible[r.id]) for r in rows]

    @staticmethod
    def _build(row: PolicyRow | Any, eligible: list[tuple[str, UUID]]) -> Policy:
        return Policy(
            id=row.id,
            org_id=row.org_id,
            type=PolicyType(row.type),
            target=QualifiedName.parse(row.target),
            approval_type=ApprovalType(row.approval_type),
            approver_group_id=row.approver_group_id,
            created_at=row.created_at,
            approvals_required=row.approvals_required,
            max_duration_hours=row.max_duration_hours,
            require_ticket=row.require_ticket,
            eligible_user_ids=frozenset(i for k, i in eligible if k == "user"),
            eligible_group_ids=frozenset(i for k, i in eligible if k == "group"),
            approver_group_set_by=row.approver_group_set_by,
            approval_type_set_by=row.approval_type_set_by,
            approvals_required_set_by=row.approvals_required_set_by,
            eligible_set_by=row.eligible_set_by,
        )

    def _write_eligible(self, policy: Policy) -> None:
        self.s.execute(delete(PolicyEligibleRow).where(PolicyEligibleRow.policy_id == policy.id))
        for uid in sorted(policy.eligible_user_ids):
            self.s.add(
                PolicyEligibleRow(policy_id=policy.id, principal_kind="user", principal_id=uid)
            )
        for gid in sorted(policy.eligible_group_ids):
            self.s.add(
                PolicyEligibleRow(policy_id=policy.id, principal_kind="group", principal_id=gid)
            )

    def add(self, policy: Policy) -> None:
        self._memo.changed(Change.POLICY, policy.id)
        self.s.add(
            PolicyRow(
                id=policy.id,
                org_id=policy.org_id,
                type=policy.type.value,
                target=str(policy.target),
                target_key=policy.target.key,
                approval_type=policy.approval_type.value,
                approver_group_id=policy.approver_group_id,
                approvals_required=policy.approvals_required,
                max_duration_hours=policy.max_duration_hours,
                require_ticket=policy.require_ticket,
                created_at=policy.created_at,
                approver_group_set_by=policy.approver_group_set_by,
                approval_type_set_by=policy.approval_type_set_by,
                approvals_required_set_by=policy.approvals_required_set_by,
                eligible_set_by=policy.eligible_set_by,
            )
        )
        self.s.flush()
        self._write_eligible(policy)
        self.s.flush()

    def get(self, policy_id: UUID) -> Policy | None:
        if (known := self._memo.get(POLICIES, policy_id)) is not None:
            return known
        row = _GET_POLICY.first(self.s, id=policy_id)
        return self._policy(row) if row else None

    def for_target(self, org_id: UUID, type: PolicyType, target: QualifiedName) -> Policy | None:
        key = (org_id, type.value, target.key)
        known = self._memo.get(POLICY_FOR, key)
        if known is not None and (policy := self._memo.get(POLICIES, known)) is not None:
            return policy
        row = _POLICY_FOR.first(self.s, org=org_id, type=type.value, key=target.key)
        if row is None:
            return None
        self._memo.put(POLICY_FOR, key, row.id)
        return self._policy(row)

    def save(self, policy: Policy) -> None:
        self._memo.changed(Change.POLICY, policy.id)
        row = self.s.get_one(PolicyRow, policy.id)
        row.approval_type = policy.approval_type.value
        row.approver_group_id = policy.approver_group_id
        row.approvals_required = policy.approvals_required
        row.max_duration_hours = policy.max_duration_hours
        row.require_ticket = policy.require_ticket
        row.approver_group_set_by = policy.approver_group_set_by
        row.approval_type_set_by = policy.approval_type_set_by
        row.approvals_required_set_by = policy.approvals_required_set_by
        row.eligible_set_by = policy.eligible_set_by
        self._write_eligible(policy)
        self.s.flush()

    def remove(self, policy_id: UUID) -> None:
        self._memo.changed(Change.POLICY, policy_id)
        self.s.execute(delete(PolicyEligibleRow).where(PolicyEligibleRow.policy_id == policy_id))
        self.s.execute(delete(PolicyRow).where(PolicyRow.id == policy_id))

    def count(self, org_id: UUID) -> int:
        return int(
            self.s.scalar(
                select(func.count()).select_from(PolicyRow).where(PolicyRow.org_id == org_id)
            )
            or 0
        )

    def matching(
        self,
        org_id: UUID,
        *,
        type: PolicyType | None = None,
        approval_type: ApprovalType | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
        scope: str | None = None,
    ) -> list[Policy]:
        stmt = select(PolicyRow).where(PolicyRow.org_id == org_id)
        if scope is not None:
            # Keys are casefolded "scope\name": a range of the (org, type, key) index; "]" is
            # the character after the backslash.
            folded = scope.casefold()
            stmt = stmt.where(
                PolicyRow.target_key >= f"{folded}\\", PolicyRow.target_key < f"{folded}]"
            )
        if type is not None:
            stmt = stmt.where(PolicyRow.type == type.value)
        if approval_type is not None:
            stmt = stmt.where(PolicyRow.approval_type == approval_type.value)
        if after is not None:
            stmt = stmt.where(tuple_(PolicyRow.type, PolicyRow.target_key) > after)
        stmt = stmt.order_by(PolicyRow.type, PolicyRow.target_key).limit(limit)
        return self._policies(self.s.scalars(stmt).all())

    def page(
        self,
        org_id: UUID,
        *,
        type: PolicyType | None,
        approval_type: ApprovalType | None,
        search: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[Policy]:
        p = PolicyRow
        # Reads the unique (org_id, type, target_key) index in its order, from the cursor on.
        stmt = select(p.type, p.target_key, p.id, p.target).where(p.org_id == org_id)
        if type is not None:
            stmt = stmt.where(p.type == type.value)
        if approval_type is not None:
            stmt = stmt.where(p.approval_type == approval_type.value)
        if cursor:
            kind, key = decode_cursor(cursor, 2)
            stmt = stmt.where(tuple_(p.type, p.target_key) > (kind, key))
        stmt = stmt.order_by(p.type, p.target_key)
        nxt = None
        rows: Sequence[Sequence[Any]]  # (type, target key, id, ...)
        if not search:
            rows = self.s.execute(stmt.limit(limit + 1)).all()
            if len(rows) > limit:
                rows = rows[:limit]
                nxt = encode_cursor(rows[-1][0], rows[-1][1])
        else:
            # A substring cannot use an index: look at SEARCH_WINDOW policies at most (in order,
            # under the other filters) and say where the look stopped.
            window = stmt.limit(SEARCH_WINDOW).subquery()
            matches = (
                select(window.c.type, window.c.target_key, window.c.id)
                .where(contains(window.c.target, search))
                .order_by(window.c.type, window.c.target_key)
            )
            rows = self.s.execute(matches.limit(limit + 1)).all()
            if len(rows) > limit:
                rows = rows[:limit]
                nxt = encode_cursor(rows[-1][0], rows[-1][1])
            else:
                edge = self.s.execute(stmt.offset(SEARCH_WINDOW - 1).limit(1)).first()
                nxt = encode_cursor(edge[0], edge[1]) if edge is not None else None
        ids = [r[2] for r in rows]
        by_id = {r.id: r for r in self.s.scalars(select(PolicyRow).where(PolicyRow.id.in_(ids)))}
        return Page(self._policies([by_id[i] for i in ids if i in by_id]), nxt)
