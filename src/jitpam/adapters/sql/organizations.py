"""Organizations: their settings (access control), system accounts and mail domains."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    select,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.memo import ORG_CONTROLS, ORG_ROWS, Change, Memo
from jitpam.adapters.sql.models import (
    AuditHeadRow,
    OrganizationDomainRow,
    OrganizationRow,
    SystemAccountRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.domain.audit import GENESIS_HASH
from jitpam.domain.control import AccessControl
from jitpam.domain.directory import Organization

_ORGS = cast(Table, OrganizationRow.__table__)
_READ_ORG = select(
    _ORGS.c.id,
    _ORGS.c.name,
    _ORGS.c.control_enabled,
    _ORGS.c.default_approver_group_id,
    _ORGS.c.ticket_pattern,
    _ORGS.c.max_policies,
    _ORGS.c.pending_hours,
    _ORGS.c.default_approver_group_set_by,
    _ORGS.c.lockbox_approval_required,
    _ORGS.c.lockbox_max_hours,
    _ORGS.c.synced_approver_groups,
).where(_ORGS.c.id == bindparam("id"))
_GET_ORG = Prepared(_READ_ORG)
_LOCK_ORG = Prepared(_READ_ORG.with_for_update())
_SYSTEM_ACCOUNTS = Prepared(
    select(SystemAccountRow.user_id, SystemAccountRow.designated_by).where(
        SystemAccountRow.org_id == bindparam("org")
    )
)


class SqlOrganizations:
    def __init__(self, session: Session) -> None:
        self.s = session
        # An organization's settings are read by most use cases, often more than once: read
        # once per transaction (save_control makes the memo forget them).
        self._memo = Memo.of(session)

    def _row(self, org_id: UUID, *, for_update: bool = False) -> Any:
        if not for_update and (known := self._memo.get(ORG_ROWS, org_id)) is not None:
            return known
        row = (_LOCK_ORG if for_update else _GET_ORG).first(self.s, id=org_id)
        if row is not None:
            self._memo.put(ORG_ROWS, org_id, row)
        return row

    def add(self, org: Organization, control: AccessControl, *, at: datetime) -> None:
        self.s.add(OrganizationRow(id=org.id, name=org.name, created_at=at))
        self.s.flush()  # rows are flushed in the order of their foreign keys only when told
        self.s.add(AuditHeadRow(org_id=org.id, seq=0, head_hash=GENESIS_HASH))
        self.s.flush()
        self.save_control(control)

    def get(self, org_id: UUID) -> Organization | None:
        row = self._row(org_id)
        return Organization(row.id, row.name) if row else None

    def domain_owner(self, domain: str) -> UUID | None:
        row = self.s.get(OrganizationDomainRow, domain.lower())
        return row.org_id if row else None

    def add_domain(self, org_id: UUID, domain: str) -> None:
        self.s.add(OrganizationDomainRow(domain=domain.lower(), org_id=org_id))
        self.s.flush()

    def domains(self, org_id: UUID) -> list[str]:
        return list(
            self.s.scalars(
                select(OrganizationDomainRow.domain)
                .where(OrganizationDomainRow.org_id == org_id)
                .order_by(OrganizationDomainRow.domain)
            )
        )

    def all(self) -> list[Organization]:
        rows = self.s.scalars(select(OrganizationRow).order_by(OrganizationRow.name))
        return [Organization(r.id, r.name) for r in rows]

    def get_by_name(self, name: str) -> Organization | None:
        row = self.s.scalars(select(OrganizationRow).where(OrganizationRow.name == name)).first()
        return Organization(row.id, row.name) if row else None

    def control(self, org_id: UUID, *, for_update: bool = False) -> AccessControl:
        if not for_update and (known := self._memo.get(ORG_CONTROLS, org_id)) is not None:
            return known
        row = self._row(org_id, for_update=for_update)
        if row is None:
            raise LookupError(f"no organization {org_id}")
        accounts: dict[UUID, UUID | None] = dict(_SYSTEM_ACCOUNTS.all(self.s, org=org_id))
        control = AccessControl(
            org_id=row.id,
            enabled=row.control_enabled,
            default_approver_group_id=row.default_approver_group_id,
            system_account_ids=frozenset(accounts),
            ticket_pattern=row.ticket_pattern,
            max_policies=row.max_policies,
            pending_hours=row.pending_hours,
            default_approver_group_set_by=row.default_approver_group_set_by,
            system_account_designators=accounts,
            lockbox_approval_required=row.lockbox_approval_required,
            lockbox_max_hours=row.lockbox_max_hours,
            synced_approver_group_ids=frozenset(
                UUID(g) for g in json.loads(row.synced_approver_groups)
            ),
        )
        self._memo.put(ORG_CONTROLS, org_id, control)
        return control

    def save_control(self, control: AccessControl) -> None:
        self._memo.changed(Change.ORG_CONTROL, control.org_id)
        row = self.s.get_one(OrganizationRow, control.org_id)
        row.control_enabled = control.enabled
        row.default_approver_group_id = control.default_approver_group_id
        row.ticket_pattern = control.ticket_pattern
        row.max_policies = control.max_policies
        row.pending_hours = control.pending_hours
        row.default_approver_group_set_by = control.default_approver_group_set_by
        row.lockbox_approval_required = control.lockbox_approval_required
        row.lockbox_max_hours = control.lockbox_max_hours
        row.synced_approver_groups = json.dumps(
            sorted(str(g) for g in control.synced_approver_group_ids)
        )
        self.s.execute(delete(SystemAccountRow).where(SystemAccountRow.org_id == control.org_id))
        for user_id in sorted(control.system_account_ids):
            self.s.add(
                SystemAccountRow(
                    org_id=control.org_id,
                    user_id=user_id,
                    designated_by=control.system_account_designators.get(user_id),
                )
            )
        self.s.flush()
