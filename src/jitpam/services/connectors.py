"""Connectors at work: the pass that makes a target system match the grants, and their status.

A pass is level-triggered: it reads what the active role and role-group grants need now, reads
what the target holds, plans with ``domain.connectors.plan`` and applies the plan. Nothing is
remembered between passes but what jitpam added (``uow.connectors`` records) and the connector's
state, so a pass interrupted anywhere (a server killed, the target gone) is finished by the
next one, and running one twice changes nothing the second time:

- an add is recorded as jitpam's *before* it is made (a membership found later with that record
  is jitpam's to remove; without it, it would be adopted as pre-existing and stay for good); an
  add that failed loses its record again;
- a removal drops its record only after the target confirmed it.

The worker runs passes (``run_connectors``) when what the grants need or a configuration
changed, when a failed pass's retry is due (1 s, doubling, up to a cap), and every
``reconcile`` interval. One worker at a time works on a connector (a lease on its state row).
Every change made or failed is audited in the organization's chain, as done by jitpam (a pass a
person asked for: by them). A removal that cannot be made is the loudest state: the grant shows
"still present in …", and after ``max_failures_before_alert`` failed passes in a row the default
approver group and the webhooks are told.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from jitpam.domain.audit import JITPAM, Actor, AuditEvent, Outcome
from jitpam.domain.connectors import (
    Applied,
    BoundKind,
    Change,
    ChangeOutcome,
    ConnectorConfig,
    ConnectorState,
    FailedChange,
    HeldGrant,
    Membership,
    Origin,
    Plan,
    Recorded,
    Wanted,
    config_digest,
    plan,
    wanted,
    withhold_clashes,
)
from jitpam.domain.errors import ConcurrentChange, InvalidInput, JitpamError, NotFound
from jitpam.domain.notifications import EventType
from jitpam.domain.operations import AuditOperation
from jitpam.domain.timeutil import iso
from jitpam.services.authorization import authorize
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.notifications import HEADLINES, queue_organization_notice
from jitpam.services.ports import ConnectorSource, UnitOfWork
from jitpam.services.use_case import use_case

log = logging.getLogger("jitpam.connectors")

LEASE = timedelta(minutes=2)  # longer than one pass may take; a crashed worker's lease runs out
RECONCILE_EVERY = timedelta(minutes=5)
RETRY_CAP = timedelta(minutes=5)


@dataclass(frozen=True)
class PassReport:
    """What one pass found and did. ``plan`` is None when the target could not be read."""

    connector: str
    ran: bool = True  # False: another worker holds the connector
    dry_run: bool = False
    plan: Plan | None = None
    outcomes: tuple[ChangeOutcome, ...] = ()
    unmappable: tuple[str, ...] = ()
    error: str | None = None
    redone: frozenset[Membership] = frozenset()  # removals an earlier pass began, made again

    @property
    def failed(self) -> tuple[ChangeOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.done)


def _record(
    org_id: UUID,
    at: datetime,
    actor: Actor,
    name: str,
    op: AuditOperation,
    details: dict[str, Any],
    outcome: Outcome = Outcome.SUCCESS,
) -> AuditEvent:
    """An audit record of connector ``name``'s, in its organization's chain."""
    return AuditEvent(
        org_id=org_id,
        at=at,
        actor=actor,
        operation=op,
        target=name,
        outcome=outcome,
        details={"connector": name, **details},
    )


def _source(ctx: ServiceContext) -> ConnectorSource:
    if ctx.connectors is None:
        raise NotFound("this server has no connectors configured (connectors_dir is not set)")
    return ctx.connectors


def _read_grants(
    uow: UnitOfWork, org_id: UUID, at: datetime
) -> tuple[list[HeldGrant], dict[str, frozenset[str]]]:
    grants = uow.requests.role_grants(org_id, at)
    groups = sorted({g.target for g in grants if g.kind is BoundKind.ROLE_GROUP})
    roles = uow.catalog.role_group_roles(org_id, only=groups) if groups else {}
    return grants, roles


def _pending_removals(
    config: ConnectorConfig, want: Wanted, records: Iterable[Recorded]
) -> set[Recorded]:
    """What jitpam added and no grant needs any more: known without reading the target."""
    return {
        r
        for r in records
        if r.applied.origin is Origin.ADDED
        and r.applied.membership.member
        not in want.needed.get(r.applied.membership.target, frozenset())
        and r.applied.membership.member not in config.protected(r.applied.membership.target)
    }


def run_pass(
    ctx: ServiceContext,
    *,
    org_id: UUID,
    config: ConnectorConfig,
    actor: Actor = JITPAM,
    dry_run: bool = False,
    retry_cap: timedelta = RETRY_CAP,
    lease: timedelta = LEASE,
) -> PassReport:
    """One pass of ``config`` for the organization (see the module's docstring). A dry run
    reads and plans only: it changes nothing, here or in the target. ``lease``: how long other
    workers leave the connector alone (a pass that dies holds it that long)."""
    source = _source(ctx)
    name = config.name
    owner = None
    if not dry_run:
        owner = _claim(ctx, org_id, name, lease)
        if owner is None:
            return PassReport(name, ran=False)
        _take_over(ctx, org_id, config)
    with ctx.reader() as uow:
        grants, roles = _read_grants(uow, org_id, ctx.clock.now())
        records = uow.connectors.records(org_id, name)
        everyone = uow.users.every_upn(org_id)
    raw = wanted(config, grants, roles)
    want = withhold_clashes(config, raw, everyone)
    try:
        target = source.open(config)
        present = target.present({r.applied.membership.target for r in records})
        todo, redone = _redo_removals(
            plan(
                config,
                holders=want.needed,
                applied=frozenset(r.applied for r in records),
                present=present,
            ),
            records,
        )
    except Exception as exc:  # the target's failure is the connector's, never the worker's
        report = PassReport(
            name, dry_run=dry_run, unmappable=want.unmappable, error=_message(config, exc)
        )
        if not dry_run:
            _finish(ctx, org_id, config, want, raw.digest, records, report, actor, retry_cap, owner)
        return report
    if dry_run:
        return PassReport(name, dry_run=True, plan=todo, unmappable=want.unmappable)
    _mark(ctx, org_id, config, todo, _upns(want, records), records)
    outcomes: list[ChangeOutcome] = []
    error: str | None = None
    if todo.adds or todo.removes:
        try:
            outcomes = target.apply(todo)
        except Exception as exc:
            error = _message(config, exc)
    report = PassReport(
        name,
        plan=todo,
        outcomes=tuple(outcomes),
        unmappable=want.unmappable,
        error=error,
        redone=redone,
    )
    _finish(ctx, org_id, config, want, raw.digest, records, report, actor, retry_cap, owner)
    return report


def _message(config: ConnectorConfig, exc: Exception) -> str:
    """What a failure of the target says; an unexpected one by its kind only (its text may hold
    anything, a secret too), the whole of it in the server's log."""
    if isinstance(exc, JitpamError):
        return exc.message
    log.error("connector %s: unexpected failure", config.name, exc_info=exc)
    return f"connector {config.name}: unexpected failure ({type(exc).__name__}); see the log"


def _redo_removals(todo: Plan, records: list[Recorded]) -> tuple[Plan, frozenset[Membership]]:
    """A removal a pass began and did not finish (its mark is still there) whose member is gone
    already is made again, not forgotten: PostgreSQL's REVOKE may have gone through while ending
    the login's sessions did not (a session that ran SET ROLE keeps the role until it ends)."""
    redo = frozenset(
        r.applied.membership
        for r in records
        if r.pending is Change.REMOVE and r.applied.membership in todo.forget
    )
    return replace(todo, removes=todo.removes | redo, forget=todo.forget - redo), redo


def _take_over(ctx: ServiceContext, org_id: UUID, config: ConnectorConfig) -> None:
    """Records of memberships jitpam added on this connector's targets through a connector
    whose configuration file is gone (renamed, or replaced by this one) become this
    connector's, audited: found in place, they would otherwise pass for pre-existing members
    and never be removed."""
    assert ctx.connectors is not None
    with ctx.uow() as uow:
        org = uow.orgs.get(org_id)
        configured = ctx.connectors.configured(org.name if org else "")
        known = set(configured.configs) | set(configured.problems)
        mine = {r.applied.membership for r in uow.connectors.records(org_id, config.name)}
        at = ctx.clock.now()
        events = []
        for old, record in uow.connectors.records_on(org_id, config.targets):
            m = record.applied.membership
            if old in known or record.applied.origin is not Origin.ADDED or m in mine:
                continue
            uow.connectors.drop(org_id, old, m)
            uow.connectors.put(org_id, config.name, replace(record, at=at))
            events.append(
                _record(
                    org_id,
                    at,
                    JITPAM,
                    config.name,
                    AuditOperation.REGISTER_CONNECTOR_MEMBER,
                    {
                        "kind": config.kind.value,
                        "target": m.target,
                        "member": m.member,
                        "user": record.upn,
                        "found": f"added by jitpam through connector {old}, whose "
                        "configuration is gone: taken over",
                    },
                )
            )
        if events:
            uow.record_all(events)
            uow.commit()


def _mark(
    ctx: ServiceContext,
    org_id: UUID,
    config: ConnectorConfig,
    todo: Plan,
    upns: dict[str, str],
    records: list[Recorded],
) -> None:
    """Mark each change the pass is about to make on its record (an add gets its record now):
    a pass cut short after the change leaves the mark, and the next pass, finding the target
    changed, knows jitpam made it (an add must never look like a member found there)."""
    kept = {r.applied.membership: r for r in records}
    marks = [
        Recorded(Applied(m, Origin.ADDED), upns.get(m.member), ctx.clock.now(), Change.ADD)
        for m in todo.adds
        if m.member not in config.protected(m.target)
    ] + [replace(kept[m], pending=Change.REMOVE) for m in todo.removes if m in kept]
    if not marks:
        return
    with ctx.uow() as uow:
        for record in sorted(marks, key=lambda r: r.applied):
            uow.connectors.put(org_id, config.name, record)
        uow.commit()


def _upns(want: Wanted, records: Iterable[Recorded]) -> dict[str, str]:
    upns = {r.applied.membership.member: r.upn for r in records if r.upn is not None}
    return {**upns, **want.upns}


def _claim(ctx: ServiceContext, org_id: UUID, name: str, lease: timedelta) -> str | None:
    """Take the connector's lease: the pass's token, or None when another worker holds it."""
    owner = str(uuid4())
    try:
        with ctx.uow() as uow:
            at = ctx.clock.now()
            state = uow.connectors.state(org_id, name, for_update=True)
            if state.lease_until is not None and state.lease_until > at:
                return None
            state.lease_until = at + lease
            state.lease_owner = owner
            uow.connectors.save_state(state)
            uow.commit()
    except ConcurrentChange:
        return None  # another worker created the state row at the same moment
    return owner


def _finish(
    ctx: ServiceContext,
    org_id: UUID,
    config: ConnectorConfig,
    want: Wanted,
    wanted_digest: str,
    records: list[Recorded],
    report: PassReport,
    actor: Actor,
    retry_cap: timedelta,
    owner: str | None,
) -> None:
    """Record what the pass did, audit it, note the state; alert when failures reached the
    connector's limit. One transaction. A pass whose lease another worker took meanwhile (it
    ran longer than the lease) records the changes it made, and nothing it concluded from what
    it read: that may be stale."""
    name = config.name
    upns = _upns(want, records)
    kept = {r.applied.membership: r for r in records}
    # Marks a pass cut short left: the change it was making when it stopped.
    interrupted = {m: r.pending for m, r in kept.items() if r.pending is not None}
    with ctx.uow() as uow:
        at = ctx.clock.now()
        state = uow.connectors.state(org_id, name, for_update=True)
        lost = owner is not None and state.lease_owner != owner
        held = (state.lease_until, state.lease_owner)
        events: list[AuditEvent] = []

        def event(
            op: AuditOperation, details: dict[str, Any], outcome: Outcome = Outcome.SUCCESS
        ) -> None:
            events.append(
                _record(
                    org_id, at, actor, name, op, {"kind": config.kind.value, **details}, outcome
                )
            )

        def about(m: Membership) -> dict[str, Any]:
            return {"target": m.target, "member": m.member, "user": upns.get(m.member)}

        failing: list[FailedChange] = []
        todo = report.plan
        drift = todo.drift if todo is not None else frozenset(state.drift)

        def settle(m: Membership, *, added: bool = False, mark: Change | None = None) -> None:
            """The record as it stands after the change: ``added`` by jitpam now (whatever it
            was before: a member that was there before and went, added again, is jitpam's), and
            the change still to finish (``mark``) or none."""
            record = kept.get(m) or Recorded(Applied(m, Origin.ADDED), upns.get(m.member), at)
            if added:
                record = replace(record, applied=Applied(m, Origin.ADDED))
            if m.member not in config.protected(m.target):
                uow.connectors.put(org_id, name, replace(record, pending=mark, at=at))

        if todo is not None:
            for m, change in sorted(interrupted.items()):
                if change is Change.ADD and m not in todo.adds | todo.forget:
                    settle(m, added=True)  # made before the pass was cut short: found now
                    event(AuditOperation.ADD_CONNECTOR_MEMBER, {**about(m), "recovered": True})
                elif change is Change.REMOVE and m not in todo.removes | todo.forget:
                    settle(m)  # needed again: the removal's mark goes
        for o in report.outcomes:
            m = o.membership
            if o.change is Change.ADD:
                if o.done:
                    settle(m, added=True)
                    event(AuditOperation.ADD_CONNECTOR_MEMBER, about(m))
                    continue
                if m in kept and kept[m].pending is None:
                    settle(m)
                else:
                    uow.connectors.drop(org_id, name, m)
                event(
                    AuditOperation.ADD_CONNECTOR_MEMBER,
                    {**about(m), "error": o.error},
                    Outcome.FAILURE,
                )
            else:
                why = "drift" if m in drift else "no grant needs it"
                if o.done:
                    uow.connectors.drop(org_id, name, m)
                    details = {**about(m), "why": why}
                    if o.sessions_ended:
                        details["sessions_ended"] = o.sessions_ended
                    if m in report.redone:
                        details["recovered"] = True  # a removal an earlier pass began
                    event(AuditOperation.REMOVE_CONNECTOR_MEMBER, details)
                    continue
                if m in kept:
                    # The mark stays: the next pass removes it again even if the member is
                    # gone by then (the removal may have half succeeded: REVOKE, no sessions
                    # ended).
                    settle(m, mark=Change.REMOVE)
                event(
                    AuditOperation.REMOVE_CONNECTOR_MEMBER,
                    {**about(m), "why": why, "error": o.error},
                    Outcome.FAILURE,
                )
            failing.append(FailedChange(o.change, m, upns.get(m.member), o.error or "failed", at))
        if todo is not None and lost:
            log.warning("connector %s: another worker took the lease during the pass", name)
        if todo is not None and not lost:
            tried = {(o.change, o.membership) for o in report.outcomes}
            untried = [(Change.ADD, m) for m in todo.adds] + [
                (Change.REMOVE, m) for m in todo.removes
            ]
            for change, m in sorted(untried):
                if (change, m) not in tried and report.error is not None:
                    failing.append(FailedChange(change, m, upns.get(m.member), report.error, at))
            for m in sorted(todo.adopt):
                uow.connectors.put(
                    org_id, name, Recorded(Applied(m, Origin.PRE_EXISTING), upns.get(m.member), at)
                )
                event(
                    AuditOperation.REGISTER_CONNECTOR_MEMBER,
                    {**about(m), "found": "a member already: jitpam will never remove it"},
                )
            for m in sorted(todo.forget):
                uow.connectors.drop(org_id, name, m)
                if interrupted.get(m) is Change.ADD:
                    continue  # an add a pass cut short before making it: nothing happened
                event(
                    AuditOperation.REPORT_CONNECTOR_DRIFT,
                    {**about(m), "found": "removed outside jitpam"},
                )
            for m in sorted(todo.drift - set(state.drift)):
                event(
                    AuditOperation.REPORT_CONNECTOR_DRIFT,
                    {
                        **about(m),
                        "found": "a member no grant needs, not added by jitpam",
                        "repaired": m in todo.removes,
                    },
                )
        elif todo is None:
            # The target could not be read: what jitpam knows it must still take away.
            for r in sorted(_pending_removals(config, want, records), key=lambda r: r.applied):
                m = r.applied.membership
                failing.append(FailedChange(Change.REMOVE, m, r.upn, report.error or "", at))
        error = report.error
        if report.unmappable:
            error = "; ".join((*report.unmappable, *([error] if error else [])))
        if (error is not None or failing) and state.failures == 0:
            event(
                AuditOperation.SYNC_CONNECTOR,
                {"error": error or failing[0].error, "failed_changes": len(failing)},
                Outcome.FAILURE,
            )
        state.passed(
            at,
            wanted_digest=wanted_digest,
            config_digest=config_digest(config),
            failing=tuple(failing),
            drift=tuple(sorted(m for m in drift if m not in (todo.removes if todo else ()))),
            error=error,
            retry_cap=retry_cap,
        )
        if lost:
            state.lease_until, state.lease_owner = held  # the other worker's still
        if state.alert_due(config.max_failures_before_alert):
            state.alerted_at = at
            _alert(ctx, uow, name, config, state, at)
        uow.connectors.save_state(state)
        uow.record_all(events)
        uow.commit()


def _alert(
    ctx: ServiceContext,
    uow: UnitOfWork,
    name: str,
    config: ConnectorConfig | None,
    state: ConnectorState,
    at: datetime,
) -> None:
    event = EventType.CONNECTOR_FAILING
    lines = [
        f"Connector: {name}" + (f" ({config.kind.value})" if config else ""),
        f"Failed passes in a row: {state.failures}",
        f"Last error: {state.last_error or '-'}",
    ]
    lines += [
        f"Still present in {name}: {f.membership.member} in {f.membership.target}"
        + (f" (for {f.upn})" if f.upn else "")
        for f in state.still_present
    ]
    headline = HEADLINES[event].replace("$target", name)
    queue_organization_notice(
        ctx,
        uow,
        org_id=state.org_id,
        event=event,
        at=at,
        key=f"{event.value}:{state.org_id}:{name}:{iso(at)}",
        headline=headline.replace("$failures", str(state.failures)),
        details="\n".join(lines),
        page=f"/connectors/{name}",
        page_title="Connector status",
        data={
            "connector": name,
            "failures": state.failures,
            "last_error": state.last_error,
            "still_present": [
                {"target": f.membership.target, "member": f.membership.member, "user": f.upn}
                for f in state.still_present
            ],
        },
    )


def run_connectors(
    ctx: ServiceContext,
    *,
    every: timedelta = RECONCILE_EVERY,
    retry_cap: timedelta = RETRY_CAP,
    lease: timedelta = LEASE,
) -> int:
    """The worker's round: every connector of every organization whose pass is due (see the
    module's docstring); returns how many passes ran. A connector's failure is its own."""
    if ctx.connectors is None:
        return 0
    with ctx.reader() as uow:
        orgs = [(o.id, o.name) for o in uow.orgs.all()]
        holding = uow.connectors.holding()
    ran = 0
    for org_id, org_name in orgs:
        configured = ctx.connectors.configured(org_name)
        for name in sorted(holding.get(org_id, frozenset()) - set(configured.configs)):
            why = configured.problems.get(name) or "its configuration file is gone"
            try:
                _unmanaged(ctx, org_id, name, why)
            except Exception:
                log.exception("connector %s of %s: could not record its state", name, org_name)
        if not configured.configs:
            continue
        with ctx.reader() as uow:
            at = ctx.clock.now()
            grants, roles = _read_grants(uow, org_id, at)
            states = {s.name: s for s in uow.connectors.states(org_id)}
        for name, config in sorted(configured.configs.items()):
            state = states.get(name) or ConnectorState(org_id, name)
            want = wanted(config, grants, roles)
            if not state.due(
                at, wanted_digest=want.digest, config_digest=config_digest(config), every=every
            ):
                continue
            try:
                report = run_pass(
                    ctx, org_id=org_id, config=config, retry_cap=retry_cap, lease=lease
                )
                ran += report.ran
            except Exception:
                log.exception("connector %s of %s: the pass failed", name, org_name)
    return ran


def _unmanaged(ctx: ServiceContext, org_id: UUID, name: str, why: str) -> None:
    """A connector that holds memberships jitpam added and cannot run (its file is gone or
    wrong): nothing it added is taken away any more, which is as loud as a failed removal.
    Each of them shows as still present, and the first time, the audit log says so and the
    alert goes out at once (no pass will retry)."""
    error = f"connector {name} cannot run: {why}; what jitpam added through it stays"
    with ctx.uow() as uow:
        state = uow.connectors.state(org_id, name, for_update=True)
        if state.last_error == error:
            return  # said already
        at = ctx.clock.now()
        records = uow.connectors.records(org_id, name)
        failing = tuple(
            FailedChange(Change.REMOVE, r.applied.membership, r.upn, error, at)
            for r in records
            if r.applied.origin is Origin.ADDED
        )
        state.passed(
            at,
            wanted_digest=state.wanted_digest,
            config_digest=state.config_digest,
            failing=failing,
            drift=state.drift,
            error=error,
            retry_cap=RETRY_CAP,
        )
        uow.record(
            _record(
                org_id,
                at,
                JITPAM,
                name,
                AuditOperation.SYNC_CONNECTOR,
                {"error": error, "failed_changes": len(failing)},
                Outcome.FAILURE,
            )
        )
        if state.alerted_at is None:
            state.alerted_at = at
            _alert(ctx, uow, name, None, state, at)
        uow.connectors.save_state(state)
        uow.commit()


# -- what people see and ask for ----------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorView:
    name: str
    kind: str | None  # None: no valid configuration
    problem: str | None  # why the configuration cannot be used
    state: ConnectorState
    bindings: tuple[tuple[str, str, str], ...] = ()  # (role or role_group, its name, target)
    added: int = 0
    pre_existing: int = 0
    records: tuple[Recorded, ...] = field(default=())

    @property
    def health(self) -> str:
        if self.problem is not None:
            return "misconfigured"
        if self.kind is None:
            return "removed"
        if self.state.still_present:
            return "removal failing"
        if self.state.failures:
            return "failing"
        if self.state.last_run_at is None:
            return "not run yet"
        return "ok"


def _views(
    ctx: ServiceContext, uow: UnitOfWork, org_id: UUID, *, with_records: str | None = None
) -> list[ConnectorView]:
    org = uow.orgs.get(org_id)
    configured = _source(ctx).configured(org.name if org else "")
    states = {s.name: s for s in uow.connectors.states(org_id)}
    counts = uow.connectors.counts(org_id)
    # A connector whose file is gone is shown while it holds what jitpam recorded through it.
    names = sorted(set(configured.configs) | set(configured.problems) | set(counts))
    out = []
    for name in names:
        config = configured.configs.get(name)
        n = counts.get(name, {})
        out.append(
            ConnectorView(
                name=name,
                kind=config.kind.value if config else None,
                problem=configured.problems.get(name),
                state=states.get(name) or ConnectorState(org_id, name),
                bindings=tuple(
                    (b.bound.kind.value, str(b.bound.name), b.target) for b in config.bindings
                )
                if config
                else (),
                added=n.get(Origin.ADDED.value, 0),
                pre_existing=n.get(Origin.PRE_EXISTING.value, 0),
                records=tuple(uow.connectors.records(org_id, name)) if name == with_records else (),
            )
        )
    return out


def list_connectors(ctx: ServiceContext, *, caller: Caller) -> list[ConnectorView]:
    """The organization's connectors, configured or holding records (jitpam\\Role Management)."""
    op = AuditOperation.GET_CONNECTOR
    with use_case(ctx, caller=caller, operation=op, target="connectors", reads_only=True) as uow:
        authorize(
            uow, caller, AuditOperation.SET_ORGANIZATION_CONFIG, ctx.clock.now(), hold_grant=False
        )
        return _views(ctx, uow, caller.org_id)


def connector_status(ctx: ServiceContext, *, caller: Caller, name: str) -> ConnectorView:
    """One connector with what jitpam recorded in it."""
    op = AuditOperation.GET_CONNECTOR
    with use_case(ctx, caller=caller, operation=op, target=name, reads_only=True) as uow:
        authorize(
            uow, caller, AuditOperation.SET_ORGANIZATION_CONFIG, ctx.clock.now(), hold_grant=False
        )
        for view in _views(ctx, uow, caller.org_id, with_records=name):
            if view.name == name:
                return view
        raise NotFound(f"no connector {name!r} in this organization")


def reconcile(
    ctx: ServiceContext, *, caller: Caller, name: str, dry_run: bool = False
) -> PassReport:
    """A pass now, asked by a person (``jitpam connector reconcile``): audited as theirs; a dry
    run shows the plan and changes nothing."""
    op = AuditOperation.SYNC_CONNECTOR
    with use_case(ctx, caller=caller, operation=op, target=name) as uow:
        at = ctx.clock.now()
        user, _ = authorize(uow, caller, AuditOperation.SET_ORGANIZATION_CONFIG, at)
        org = uow.orgs.get(caller.org_id)
        configured = _source(ctx).configured(org.name if org else "")
        config = configured.configs.get(name)
        if config is None:
            problem = configured.problems.get(name)
            if problem is not None:
                raise InvalidInput(f"connector {name} cannot be used: {problem}")
            raise NotFound(f"no connector {name!r} is configured for this organization")
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                at=at,
                actor=Actor.of(user),
                operation=op,
                target=name,
                details={"connector": name, "dry_run": dry_run},
            )
        )
        uow.commit()
    report = run_pass(
        ctx, org_id=caller.org_id, config=config, actor=Actor.of(user), dry_run=dry_run
    )
    if not report.ran:
        raise ConcurrentChange(f"a pass of connector {name} is running now; try again shortly")
    return report


@dataclass(frozen=True)
class ConnectorGauges:
    """One connector's figures for the server's metrics: its organization by id, its name, and
    counts (never a secret)."""

    organization: str
    connector: str
    failures: int  # failed passes in a row
    still_present: int  # removals that failed: access that should be gone
    drift: int  # members no grant needs, not added by jitpam
    since_success: float | None  # seconds since the last pass that succeeded; None: never


def connector_gauges(ctx: ServiceContext) -> list[ConnectorGauges]:
    """Every organization's connectors as the store holds them now (``GET /metrics`` reads
    them when scraped); one transaction."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        return [
            ConnectorGauges(
                # Its id, not its name: /metrics answers without sign-in, and an installation's
                # customers are nobody else's business.
                organization=str(org.id),
                connector=s.name,
                failures=s.failures,
                still_present=len(s.still_present),
                drift=len(s.drift),
                since_success=(at - s.last_success_at).total_seconds()
                if s.last_success_at is not None
                else None,
            )
            for org in uow.orgs.all()
            for s in uow.connectors.states(org.id)
        ]


def still_present(uow: UnitOfWork, org_id: UUID, upn: str) -> list[str]:
    """Where access of ``upn`` that should be gone could not be taken away: "connector
    (target)", for the grant's page."""
    return still_present_by_user(uow, org_id).get(upn.casefold(), [])


def still_present_by_user(uow: UnitOfWork, org_id: UUID) -> dict[str, list[str]]:
    """``still_present`` for every user at once (one read of the connectors' states), keyed by
    the casefolded UPN."""
    found: dict[str, list[str]] = {}
    for s in uow.connectors.states(org_id):
        for f in s.still_present:
            if f.upn is not None:
                found.setdefault(f.upn.casefold(), []).append(f"{s.name} ({f.membership.target})")
    return {upn: sorted(where) for upn, where in found.items()}
