"""The decision index against the database: same answers, whatever happened before the check.

``check_access`` decides from ``ctx.index`` (memory kept exact by following the organization's
audit chain) or, with ``index=None``, from data freshly read with ``gather_facts``: the oracle.
A state machine drives the use cases as an entry point would (assignments, memberships, users
enabled and disabled, control on and off, policies, requests, approvals, revocations, the clock
going forward, back, and to either side of a grant's end) and after every step asks both about
every (user, task) pair, as the admin, at the same instant.
The index is one object for the whole run, so it must follow the chain rather than reload: an
approval or a revocation drops one user, anything else decision-relevant the organization.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.passwords import Argon2Passwords
from jitpam.domain.check import Decision, Reason
from jitpam.domain.directory import UserKind
from jitpam.domain.errors import JitpamError
from jitpam.domain.operations import REQUESTER, STEWARD, AuditOperation, DecisionEffect
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.runtime.decision_index import MemoryDecisionIndex
from jitpam.services import access, auth, directory, organizations, policies, requests
from jitpam.services.context import Caller, ServiceContext
from tests.integration.world import Person, World

T = TypeVar("T")

PEOPLE = ("alice", "bob", "carol", "dave")
SERVICE = "svc"
ACCOUNTS = (*PEOPLE, SERVICE)
APPROVERS = "Approvers"
OPS = "Ops"
GROUPS = (APPROVERS, OPS)

MOVE = "Exchange\\New-MoveRequest"
SEARCH = "Exchange\\Search-Mailbox"
RECIPIENTS = "Exchange\\Get-Recipient"
NEW_MAILBOX = "Exchange\\New-Mailbox"
SET_MAILBOX = "Exchange\\Set-Mailbox"
TASKS = (MOVE, SEARCH, RECIPIENTS, NEW_MAILBOX, SET_MAILBOX)
UNKNOWN_TASK = "Exchange\\No-Such-Task"

MOVE_MAILBOXES = "Exchange\\Move Mailboxes"
MAIL_RECIPIENTS = "Exchange\\Mail Recipients"
MAILBOX_SEARCH = "Exchange\\Mailbox Search"
ROLES = (MOVE_MAILBOXES, MAIL_RECIPIENTS, MAILBOX_SEARCH)
RECIPIENT_MANAGEMENT = "Exchange\\Recipient Management"
ORGANIZATION_MANAGEMENT = "Exchange\\Organization Management"
ROLE_GROUPS = (RECIPIENT_MANAGEMENT, ORGANIZATION_MANAGEMENT)

TARGETS = (
    *((PolicyType.TASK, t) for t in TASKS),
    *((PolicyType.ROLE, r) for r in ROLES),
    *((PolicyType.ROLE_GROUP, g) for g in ROLE_GROUPS),
)
ASSIGNABLE = tuple((kind, name) for kind, name in TARGETS if kind is not PolicyType.TASK)
PRINCIPALS = (*(("user", a) for a in ACCOUNTS), *(("group", g) for g in GROUPS))
DIRECTORY_CHANGES = (
    "assign",
    "unassign",
    "membership",
    "enable_or_disable",
    "control",
    "steer_service",
)

# Few examples on each database (each one builds an organization and its catalog there), six
# times as many on the fake: the index's rule is the same whatever stores the chain.
DB_SETTINGS = settings(
    max_examples=5,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FAKE_SETTINGS = settings(DB_SETTINGS, max_examples=30)


def key(d: Decision) -> tuple[bool, Reason, UUID | None]:
    return d.allowed, d.reason, d.authorization_id


def outcome(call: Callable[[], Sequence[Decision]]) -> object:
    """The decisions as comparable tuples, or the refusal's type (both paths must refuse alike)."""
    try:
        return [key(d) for d in call()]
    except JitpamError as err:
        return type(err).__name__


def compare(
    indexed: ServiceContext, caller: Caller, pairs: list[tuple[str, str]]
) -> tuple[object, object]:
    """The same batch through the index and through the database, at the same instant."""
    oracle = replace(indexed, index=None)
    fast = outcome(lambda: access.check_access_batch(indexed, caller=caller, pairs=pairs))
    slow = outcome(lambda: access.check_access_batch(oracle, caller=caller, pairs=pairs))
    return fast, slow


def disagreements(pairs: list[tuple[str, str]], fast: object, slow: object) -> list[str]:
    if not isinstance(fast, list) or not isinstance(slow, list):
        return [f"index: {fast!r}, database: {slow!r}"]
    return [
        f"{u} / {t}: index {a}, database {b}"
        for (u, t), a, b in zip(pairs, fast, slow, strict=True)
        if a != b
    ]


def machine_for(
    ctx: ServiceContext, clock: FixedClock, stranger: str, seen: Counter[str]
) -> type[RuleBasedStateMachine]:
    """One example is one fresh organization; the index (``ctx.index``) is shared by all."""
    assert isinstance(ctx.index, MemoryDecisionIndex)  # the fixture's: its reloads are counted
    index = ctx.index

    class IndexFollowsTheChain(RuleBasedStateMachine):
        @initialize()
        def build(self) -> None:
            self.steps: list[str] = []  # what happened, for the report of a disagreement
            self.dirty = True  # the organization changed since the index's last catch-up
            self.world = w = World(ctx, clock)
            self.admin = w.admin.caller
            self.people: dict[str, Person] = {p: w.user(p) for p in PEOPLE}
            # The admin makes every account (the service account too), so it steers them all and
            # its designation of the service account is refused (separation of duties). Root, a
            # second administrator made by the admin, steers none of them: root's designation
            # counts, until someone sets a credential of the account (``steer_service``).
            self.root = w.user("root", role_groups=("jitpam\\Global Administrator",)).caller
            self.people[SERVICE] = w.user(SERVICE, kind=UserKind.SERVICE)
            w.group(APPROVERS, self.people["carol"], self.people["dave"])
            w.group(OPS, self.people["bob"])
            self.assignments: set[tuple[PolicyType, str, str, str]] = set()
            self.assignment(True, (PolicyType.ROLE, MOVE_MAILBOXES), ("user", "alice"), 0)
            self.assignment(True, (PolicyType.ROLE, MAILBOX_SEARCH), ("user", "dave"), 0)
            self.assignment(True, (PolicyType.ROLE, MAIL_RECIPIENTS), ("group", OPS), 0)
            organizations.enable_access_control(
                ctx, caller=self.root, admin_group=APPROVERS, system_accounts=[self.upn(SERVICE)]
            )
            self.policies: dict[tuple[PolicyType, str], UUID] = {}
            self.policy(True, (PolicyType.TASK, MOVE), ApprovalType.MANUAL, 0)
            self.policy(True, (PolicyType.ROLE, MOVE_MAILBOXES), ApprovalType.MANUAL, 0)
            self.policy(True, (PolicyType.ROLE, MAILBOX_SEARCH), ApprovalType.AUTO, 0)
            self.policy(True, (PolicyType.ROLE_GROUP, RECIPIENT_MANAGEMENT), ApprovalType.AUTO, 0)
            self.requests: list[tuple[UUID, str]] = []  # (request id, requester)
            self.pending: list[int] = []  # requests left pending, by number
            self.granted: list[int] = []  # requests approved, by number
            self.ends: list[datetime] = []  # when the grants end
            self.steps.append("-- the steps:")
            self.set_up = len(self.steps)

        def upn(self, name: str) -> str:
            return self.people[name].upn

        def attempt(
            self, kind: str, what: str, call: Callable[[], T], *, org_wide: bool
        ) -> T | None:
            """Run one use case; a refusal is a normal outcome (audited, changing nothing)."""
            try:
                result = call()
            except JitpamError as err:
                self.steps.append(f"{what}: refused ({type(err).__name__})")
                seen[f"refused {kind}: {type(err).__name__}"] += 1
                return None
            self.steps.append(what)
            seen[f"done: {kind}"] += 1
            self.dirty |= org_wide
            return result

        # -- the directory and the organization ------------------------------------------------

        @rule(change=st.sampled_from(DIRECTORY_CHANGES), data=st.data())
        def directory_change(self, change: str, data: st.DataObject) -> None:
            """One change of the directory or of control (each reloads the organization)."""
            getattr(self, change)(data)

        def assign(self, data: st.DataObject) -> None:
            what = data.draw(st.sampled_from(ASSIGNABLE), label="role or role group")
            self.assignment(True, what, data.draw(st.sampled_from(PRINCIPALS), label="to"), 0)

        def unassign(self, data: st.DataObject) -> None:
            pick = data.draw(st.integers(0, 20), label="which assignment")
            self.assignment(False, ASSIGNABLE[0], PRINCIPALS[0], pick)

        def assignment(
            self, add: bool, what: tuple[PolicyType, str], principal: tuple[str, str], pick: int
        ) -> None:
            """Assign a role or a role group to a user or a group, or remove one assigned."""
            if not add and self.assignments:
                kind, name, pkind, holder = sorted(self.assignments)[pick % len(self.assignments)]
            else:
                (kind, name), (pkind, holder) = what, principal
            typed = self.upn(holder) if pkind == "user" else holder
            done = self.attempt(
                "assign" if add else "unassign",
                f"{'assign' if add else 'unassign'} {name} {'to' if add else 'from'} {holder}",
                lambda: directory.change_assignment(
                    ctx,
                    caller=self.admin,
                    add=add,
                    **{"role" if kind is PolicyType.ROLE else "role_group": name, pkind: typed},
                ),
                org_wide=True,
            )
            if done is not None:
                change = self.assignments.add if add else self.assignments.discard
                change((kind, name, pkind, holder))

        def membership(self, data: st.DataObject) -> None:
            group = data.draw(st.sampled_from(GROUPS), label="group")
            who = data.draw(st.sampled_from(ACCOUNTS), label="member")
            add = data.draw(st.booleans(), label="add")
            self.attempt(
                "membership",
                f"{'add' if add else 'remove'} {who} {'to' if add else 'from'} {group}",
                lambda: directory.change_membership(
                    ctx, caller=self.admin, group=group, upn=self.upn(who), add=add
                ),
                org_wide=True,
            )

        def enable_or_disable(self, data: st.DataObject) -> None:
            who = data.draw(st.sampled_from(ACCOUNTS), label="user")
            enabled = data.draw(st.booleans(), label="enabled")
            self.attempt(
                "enable" if enabled else "disable",
                f"{'enable' if enabled else 'disable'} {who}",
                lambda: directory.set_user(
                    ctx, caller=self.admin, upn=self.upn(who), enabled=enabled
                ),
                org_wide=True,
            )

        def steer_service(self, data: st.DataObject) -> None:
            """The admin mints a token for the service account: that makes the admin (who steers
            it) its designator, so its exemption as a system account stops counting until root
            designates it again (``control``)."""
            del data
            self.attempt(
                "steer",
                "the admin creates a token for the service account",
                lambda: auth.create_token(ctx, caller=self.admin, user=self.upn(SERVICE)),
                org_wide=True,
            )

        def control(self, data: st.DataObject) -> None:
            if data.draw(st.booleans(), label="control on"):
                system = data.draw(st.booleans(), label="the service is a system account")
                accounts = [self.upn(SERVICE)] if system else []
                # Root's designation of the service account counts (again); the admin's is
                # refused whenever it would add or renew one (it steers the account).
                by = data.draw(st.sampled_from(["root", "admin"]), label="enabled by")
                caller = self.root if by == "root" else self.admin
                self.attempt(
                    "control on",
                    f"{by} enables control, system accounts {accounts}",
                    lambda: organizations.enable_access_control(
                        ctx, caller=caller, admin_group=APPROVERS, system_accounts=accounts
                    ),
                    org_wide=True,
                )
            else:
                self.attempt(
                    "control off",
                    "disable control",
                    lambda: organizations.disable_access_control(ctx, caller=self.admin),
                    org_wide=True,
                )

        @rule(
            add=st.booleans(),
            what=st.sampled_from(TARGETS),
            approval=st.sampled_from(ApprovalType),
            pick=st.integers(0, 20),
        )
        def policy(
            self, add: bool, what: tuple[PolicyType, str], approval: ApprovalType, pick: int
        ) -> None:
            """Add an Auto or Manual policy on a task, a role or a role group, or remove one."""
            if add or not self.policies:
                kind, name = what
                made = self.attempt(
                    "new policy",
                    f"{approval.value} policy on {kind.value} {name}",
                    lambda: policies.new_policy(
                        ctx,
                        caller=self.admin,
                        type=kind,
                        target=name,
                        approval_type=approval,
                        approver_group=APPROVERS,
                    ),
                    org_wide=True,
                )
                if made is not None:
                    self.policies[what] = made.policy.id
                return
            chosen = sorted(self.policies)[pick % len(self.policies)]
            removed = self.attempt(
                "remove policy",
                f"remove the policy on {chosen[0].value} {chosen[1]}",
                lambda: policies.remove_policy(
                    ctx, caller=self.admin, policy_id=self.policies[chosen]
                ),
                org_wide=True,
            )
            if removed is not None:
                del self.policies[chosen]

        # -- requests, approvals, revocations: one user's grants ------------------------------

        def _request(self, requester: str, pick: int, hours: int, approver: str | None) -> None:
            covered = sorted(self.policies) or list(TARGETS)  # uncovered: refused, no change
            kind, name = covered[pick % len(covered)]
            view = self.attempt(
                "request",
                f"{requester} requests {kind.value} {name} for {hours}h",
                lambda: requests.new_request(
                    ctx,
                    caller=self.people[requester].caller,
                    type=kind,
                    target=name,
                    reason="index property",
                    duration_hours=hours,
                ),
                org_wide=False,
            )
            if view is None:
                return
            self.requests.append((view.request.id, requester))
            number = len(self.requests) - 1
            (self.pending if view.status is RequestStatus.PENDING else self.granted).append(number)
            self.note_end(view)
            if approver is not None and view.status is RequestStatus.PENDING:
                if approver == requester:  # never their own: the other approver
                    approver = "dave" if requester == "carol" else "carol"
                self._approve(len(self.requests) - 1, approver)

        def _approve(self, number: int, approver: str) -> None:
            request_id, requester = self.requests[number]
            view = self.attempt(
                "approve",
                f"{approver} approves request {number} (of {requester})",
                lambda: requests.approve_request(
                    ctx, caller=self.people[approver].caller, request_id=request_id
                ),
                org_wide=False,
            )
            if view is not None and view.status is RequestStatus.APPROVED:
                self.pending.remove(number)
                self.granted.append(number)
                self.note_end(view)

        def note_end(self, view: requests.RequestView) -> None:
            if view.request.authorization is not None:
                self.ends.append(view.request.authorization.end)

        @rule(
            requester=st.sampled_from(ACCOUNTS),
            pick=st.integers(0, 20),
            hours=st.sampled_from([1, 2, 4]),
        )
        def request(self, requester: str, pick: int, hours: int) -> None:
            """Ask for something a policy covers (left pending under a Manual policy)."""
            self._request(requester, pick, hours, None)

        @rule(
            requester=st.sampled_from(ACCOUNTS),
            pick=st.integers(0, 20),
            hours=st.sampled_from([1, 2, 4]),
            approver=st.sampled_from(["carol", "dave", "bob"]),
        )
        def request_and_approve(self, requester: str, pick: int, hours: int, approver: str) -> None:
            self._request(requester, pick, hours, approver)

        @precondition(lambda self: bool(self.pending))
        @rule(pick=st.integers(0, 3), approver=st.sampled_from(["carol", "dave", "bob"]))
        def approve(self, pick: int, approver: str) -> None:
            """Approve a request left pending (it may have expired, or the approver left)."""
            self._approve(self.pending[-1 - pick % len(self.pending)], approver)

        @precondition(lambda self: bool(self.granted))
        @rule(pick=st.integers(0, 3), by=st.sampled_from(["the requester", "admin", "carol"]))
        def revoke(self, pick: int, by: str) -> None:
            """Revoke a grant (it may have ended already)."""
            number = self.granted[-1 - pick % len(self.granted)]
            request_id, requester = self.requests[number]
            caller = {
                "the requester": self.people[requester].caller,
                "admin": self.admin,
                "carol": self.people["carol"].caller,
            }[by]
            self.attempt(
                "revoke",
                f"{by} revokes request {number} (of {requester})",
                lambda: requests.revoke_authorization(ctx, caller=caller, request_id=request_id),
                org_wide=False,
            )

        @rule(minutes=st.sampled_from([1, 30, 59, 60, 61, 119, 120, 180, 241, 600]))
        def time_passes(self, minutes: int) -> None:
            clock.advance(timedelta(minutes=minutes))
            self.steps.append(f"{minutes} minutes pass")

        @rule(minutes=st.sampled_from([1, 59, 61, 180]))
        def clock_steps_back(self, minutes: int) -> None:
            """A check decided after another but at an earlier instant (or a clock set back):
            grants that ended in between must count again."""
            clock.advance(timedelta(minutes=-minutes))
            self.steps.append(f"the clock steps back {minutes} minutes")

        @precondition(lambda self: bool(self.ends))
        @rule(
            pick=st.integers(0, 3),
            after_first=st.booleans(),
            change=st.sampled_from(DIRECTORY_CHANGES),
            data=st.data(),
        )
        def either_side_of_a_grant_end(
            self, pick: int, after_first: bool, change: str, data: st.DataObject
        ) -> None:
            """A directory change and a check a second from a grant's end, then (by the
            invariant) a check a second on the other side of it: the index then holds users
            loaded at one instant and is asked about another."""
            end = self.ends[-1 - pick % len(self.ends)]
            first, then = (1, -1) if after_first else (-1, 1)
            clock.set(end + timedelta(seconds=first))
            self.steps.append(f"the clock is set to {clock.now().time()}, by a grant's end")
            getattr(self, change)(data)
            self.index_decides_as_the_database()
            clock.set(end + timedelta(seconds=then))
            self.steps.append(f"the clock is set to {clock.now().time()}")

        # -- single checks, typed as people type them -----------------------------------------

        @rule(
            who=st.sampled_from([*ACCOUNTS, "admin", "stranger", "nobody", " ALICE ", "no-at"]),
            task=st.sampled_from(
                [*TASKS, UNKNOWN_TASK, "New-MoveRequest", "exchange\\search-mailbox", "No-Such"]
            ),
            asker=st.sampled_from(["admin", "the subject", "bob"]),
        )
        def single_check(self, who: str, task: str, asker: str) -> None:
            upn = {
                "admin": self.world.admin.upn,
                "stranger": stranger,  # a user of another organization
                "nobody": self.world.upn("nobody"),
                " ALICE ": f"  {self.people['alice'].upn.upper()} ",
                "no-at": "alice",
            }.get(who) or self.upn(who)
            caller = {
                "admin": self.admin,
                "bob": self.people["bob"].caller,
                "the subject": self.people[who].caller if who in self.people else self.admin,
            }[asker]
            oracle = replace(ctx, index=None)
            before = index.reloads
            fast = outcome(lambda: [access.check_access(ctx, caller=caller, user=upn, task=task)])
            slow = outcome(
                lambda: [access.check_access(oracle, caller=caller, user=upn, task=task)]
            )
            seen["checks"] += 1
            self.steps.append(f"{asker} asks about {upn!r} / {task!r}: {fast}")
            assert fast == slow, self.report(disagreements([(upn, task)], fast, slow))
            if isinstance(fast, str):  # refused: a disabled asker is refused before catching up
                self.dirty &= index.reloads == before
                return
            assert index.reloads - before == (1 if self.dirty else 0), self.report([])
            self.dirty = False  # a check catches up whatever the organization did before it

        # -- the property ----------------------------------------------------------------------

        def report(self, lines: list[str]) -> str:
            return "\n".join([*self.steps, "-- disagreements:", *lines])

        @invariant()
        def index_decides_as_the_database(self) -> None:
            # (The admin, who holds no Exchange role, is asked about in single checks.)
            subjects = [*(self.upn(a) for a in ACCOUNTS), self.world.upn("nobody"), stranger]
            pairs = [(u, t) for u in subjects for t in TASKS]
            pairs.append((self.upn("alice"), UNKNOWN_TASK))  # more in the single checks
            before = index.reloads
            fast, slow = compare(ctx, self.admin, pairs)
            seen["checks"] += len(pairs)
            assert fast == slow, self.report(disagreements(pairs, fast, slow))
            # It follows the chain: only an organization-wide change costs a reload.
            expected = 1 if self.dirty else 0
            assert index.reloads - before == expected, self.report(["-- reloads differ"])
            self.dirty = False
            assert isinstance(fast, list)
            for _, reason, grant in set(fast):
                seen[f"decided: {reason.value}{' by a grant' if grant else ''}"] += 1

        def teardown(self) -> None:
            seen["examples"] += 1
            seen["actions"] += len(getattr(self, "steps", [])) - getattr(self, "set_up", 0)

    return IndexFollowsTheChain


def index_follows_the_chain(ctx: ServiceContext, clock: FixedClock, runs: settings) -> None:
    stranger = World(ctx, clock).user("alice").upn  # same name, another organization
    assert isinstance(ctx.index, MemoryDecisionIndex)
    index = ctx.index
    seen: Counter[str] = Counter()
    reloads = index.reloads
    run_state_machine_as_test(machine_for(ctx, clock, stranger, seen), settings=runs)
    assert ctx.index is index  # one index followed every organization through every step
    reloaded = index.reloads - reloads
    assert 0 < reloaded < seen["checks"]
    print(f"\n{reloaded} reloads;", ", ".join(f"{k}: {n}" for k, n in sorted(seen.items())))


def test_the_index_decides_as_freshly_loaded_data_after_any_steps(
    ctx: ServiceContext, clock: FixedClock
) -> None:
    index_follows_the_chain(ctx, clock, DB_SETTINGS)


def test_the_index_decides_as_freshly_loaded_data_after_any_steps_on_the_fake(
    memory_ctx: ServiceContext, clock: FixedClock
) -> None:
    # The same machine on the in-memory unit of work, with many more examples: the index's
    # rule (what to forget on which record) is the same whatever stores the chain.
    index_follows_the_chain(memory_ctx, clock, FAKE_SETTINGS)


# -- explicit cases --------------------------------------------------------------------------


def decisions(
    ctx: ServiceContext, caller: Caller, pairs: list[tuple[str, str]]
) -> list[tuple[bool, Reason, UUID | None]]:
    return [key(d) for d in access.check_access_batch(ctx, caller=caller, pairs=pairs)]


def cached_users(index: MemoryDecisionIndex, org_id: UUID) -> set[str]:
    """Whom the index holds for the organization (its internals: the one place this test
    looks inside)."""
    return set(index._orgs[org_id].users)


def two_person_world(world: World) -> tuple[Person, Person]:
    alice = world.user("alice", roles=(MOVE_MAILBOXES,))
    bob = world.user("bob")
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group=world.group(APPROVERS, bob)
    )
    world.policy(MOVE, approver_group=APPROVERS)
    world.policy(
        MAILBOX_SEARCH, type=PolicyType.ROLE, approval=ApprovalType.AUTO, approver_group=APPROVERS
    )
    return alice, bob


def test_two_processes_see_each_others_approvals_and_revocations_at_once(
    world: World, ctx: ServiceContext
) -> None:
    alice, bob = two_person_world(world)
    a = replace(ctx, index=MemoryDecisionIndex())  # two server processes on one database
    b = replace(ctx, index=MemoryDecisionIndex())
    admin = world.admin.caller
    pairs = [(alice.upn, MOVE), (alice.upn, SEARCH), (bob.upn, MOVE)]
    denied = [
        (False, Reason.AUTHORIZATION_REQUIRED, None),
        (False, Reason.TASK_NOT_HELD, None),
        (False, Reason.TASK_NOT_HELD, None),
    ]
    assert decisions(a, admin, pairs) == decisions(b, admin, pairs) == denied

    view = requests.new_request(
        a, caller=alice.caller, type=PolicyType.TASK, target=MOVE, reason="move", duration_hours=2
    )
    approved = requests.approve_request(a, caller=bob.caller, request_id=view.request.id)
    assert approved.request.authorization is not None
    move_grant = approved.request.authorization.id
    auto = requests.new_request(
        a,
        caller=alice.caller,
        type=PolicyType.ROLE,
        target=MAILBOX_SEARCH,
        reason="search",
        duration_hours=1,
    )
    assert auto.request.authorization is not None
    search_grant = auto.request.authorization.id
    now = [
        (True, Reason.AUTHORIZED, move_grant),
        (True, Reason.NOT_PROTECTED, search_grant),  # no task policy: the role grant suffices
        (False, Reason.TASK_NOT_HELD, None),
    ]
    assert decisions(b, admin, pairs) == now
    assert decisions(replace(ctx, index=None), admin, pairs) == now

    requests.revoke_authorization(a, caller=bob.caller, request_id=view.request.id)
    requests.revoke_authorization(a, caller=alice.caller, request_id=auto.request.id)
    assert decisions(b, admin, pairs) == denied
    assert decisions(a, admin, pairs) == denied

    # And the grant's end, with no record at all: the clock decides.
    again = requests.new_request(
        b, caller=alice.caller, type=PolicyType.ROLE, target=MAILBOX_SEARCH, reason="again"
    )
    assert again.request.authorization is not None
    allowed = [(True, Reason.NOT_PROTECTED, again.request.authorization.id)]
    assert decisions(a, admin, [pairs[1]]) == allowed
    world.later(hours=4)
    assert decisions(a, admin, [pairs[1]]) == [(False, Reason.TASK_NOT_HELD, None)]
    assert decisions(b, admin, [pairs[1]]) == [(False, Reason.TASK_NOT_HELD, None)]


def test_a_grant_change_drops_one_user_and_a_policy_change_the_organization(
    world: World, ctx: ServiceContext
) -> None:
    alice, bob = two_person_world(world)
    carol = world.user("carol", roles=(MOVE_MAILBOXES,))
    index = MemoryDecisionIndex()
    c = replace(ctx, index=index)
    admin = world.admin.caller
    org = world.org.id
    pairs = [(p.upn, MOVE) for p in (alice, bob, carol)]
    assert [d[1] for d in decisions(c, admin, pairs)] == [
        Reason.AUTHORIZATION_REQUIRED,
        Reason.TASK_NOT_HELD,
        Reason.AUTHORIZATION_REQUIRED,
    ]
    assert index.reloads == 1
    assert cached_users(index, org) >= {alice.upn, bob.upn, carol.upn}

    # An approval: alice alone is dropped, and the next check reloads nothing else.
    view = requests.new_request(
        c, caller=alice.caller, type=PolicyType.TASK, target=MOVE, reason="move", duration_hours=1
    )
    requests.approve_request(c, caller=bob.caller, request_id=view.request.id)
    assert decisions(c, admin, [(bob.upn, MOVE)])[0][1] is Reason.TASK_NOT_HELD
    assert index.reloads == 1
    held = cached_users(index, org)
    assert alice.upn not in held
    assert {bob.upn, carol.upn} <= held
    assert decisions(c, admin, pairs)[0][:2] == (True, Reason.AUTHORIZED)
    assert index.reloads == 1

    # A revocation: the same.
    requests.revoke_authorization(c, caller=admin, request_id=view.request.id)
    assert decisions(c, admin, [(carol.upn, MOVE)])[0][1] is Reason.AUTHORIZATION_REQUIRED
    assert index.reloads == 1
    assert alice.upn not in cached_users(index, org)
    assert decisions(c, admin, pairs)[0][1] is Reason.AUTHORIZATION_REQUIRED
    assert index.reloads == 1

    # Time passing and checks themselves are no change at all.
    world.later(hours=3)
    decisions(c, admin, pairs)
    assert index.reloads == 1

    # A policy change reloads the organization, once, and its effect shows.
    policy = world.policy(SEARCH, approver_group=APPROVERS)
    assert [d[1] for d in decisions(c, admin, pairs)] == [
        Reason.AUTHORIZATION_REQUIRED,
        Reason.TASK_NOT_HELD,
        Reason.AUTHORIZATION_REQUIRED,
    ]
    assert index.reloads == 2
    policies.remove_policy(c, caller=admin, policy_id=policy.id)
    directory.change_membership(c, caller=admin, group=APPROVERS, upn=carol.upn, add=True)
    assert decisions(c, admin, [(alice.upn, SEARCH)]) == decisions(
        replace(ctx, index=None), admin, [(alice.upn, SEARCH)]
    )
    assert index.reloads == 3  # two changes, one catch-up: one reload
    assert decisions(replace(ctx, index=None), admin, pairs) == decisions(c, admin, pairs)
    assert index.reloads == 3


def test_the_oracle_path_and_the_index_refuse_alike(world: World, ctx: ServiceContext) -> None:
    """A batch about others without jitpam\\Access Checker is refused either way."""
    alice, bob = two_person_world(world)
    fast, slow = compare(ctx, bob.caller, [(alice.upn, MOVE)])
    assert fast == slow == "NotPermitted"
    fast, slow = compare(ctx, alice.caller, [(alice.upn, MOVE)])
    assert fast == slow == [(False, Reason.AUTHORIZATION_REQUIRED, None)]


def test_a_check_at_an_earlier_instant_sees_the_grants_running_at_that_instant(
    world: World, ctx: ServiceContext
) -> None:
    alice, _ = two_person_world(world)
    view = requests.new_request(
        ctx,
        caller=alice.caller,
        type=PolicyType.ROLE,
        target=MAILBOX_SEARCH,
        reason="search",
        duration_hours=1,
    )
    grant = view.request.authorization
    assert grant is not None
    index = MemoryDecisionIndex()  # one process; two checks whose clocks were read a moment apart
    late = replace(ctx, index=index, clock=FixedClock(grant.end + timedelta(milliseconds=1)))
    early = replace(ctx, index=index, clock=FixedClock(grant.end - timedelta(milliseconds=1)))
    pairs = [(alice.upn, SEARCH)]
    admin = world.admin.caller
    assert decisions(late, admin, pairs) == [(False, Reason.TASK_NOT_HELD, None)]
    oracle = replace(early, index=None)
    assert decisions(oracle, admin, pairs) == [(True, Reason.NOT_PROTECTED, grant.id)]
    assert decisions(early, admin, pairs) == decisions(oracle, admin, pairs)


def test_each_record_that_changes_grants_names_whose_grants_they_are(
    world: World, ctx: ServiceContext
) -> None:
    """The index forgets the user a grant change names as its requester, and reloads the
    organization for a credential set for another account (its steward): every use case that
    writes such a record names them, or a check would decide on grants it no longer holds."""
    alice, bob = two_person_world(world)
    admin = world.admin
    svc = world.user(SERVICE, kind=UserKind.SERVICE)
    with ctx.uow() as uow:
        start = uow.audit.head(world.org.id)[0]
    view = requests.new_request(
        ctx, caller=alice.caller, type=PolicyType.TASK, target=MOVE, reason="move"
    )
    requests.approve_request(ctx, caller=bob.caller, request_id=view.request.id)  # by a vote
    requests.revoke_authorization(ctx, caller=bob.caller, request_id=view.request.id)
    requests.new_request(  # approved at once, by jitpam
        ctx, caller=alice.caller, type=PolicyType.ROLE, target=MAILBOX_SEARCH, reason="search"
    )
    directory.set_user(ctx, caller=admin.caller, upn=alice.upn, enabled=False)  # revokes it
    auth.create_token(ctx, caller=admin.caller, user=svc.upn)
    auth.create_token(ctx, caller=bob.caller)  # one's own: no steward
    hashing = replace(ctx, passwords=Argon2Passwords(time_cost=1, memory_cost_kib=8))
    auth.set_password(hashing, caller=admin.caller, upn=svc.upn, password="a long enough secret 1")
    with ctx.uow() as uow:
        written = [r for r in uow.audit.records(world.org.id) if r.seq > start]

    effects: Counter[DecisionEffect] = Counter()
    for record in written:
        operation = AuditOperation.named(record.operation)
        assert operation is not None, record.operation  # every record names an operation
        effect = operation.effect
        effects[effect] += 1
        if effect is DecisionEffect.GRANTS:
            assert record.details[REQUESTER] == alice.upn, record
        if effect in (DecisionEffect.CREDENTIALS, DecisionEffect.CREDENTIALS_AND_TOKENS):
            if record.target == svc.upn:
                assert record.details[STEWARD] == admin.upn, record
            else:
                assert STEWARD not in record.details, record
    assert effects[DecisionEffect.GRANTS] == 4  # a vote, a revocation, Auto, a disabled user
    assert effects[DecisionEffect.CREDENTIALS] == 2
    assert effects[DecisionEffect.CREDENTIALS_AND_TOKENS] == 1
