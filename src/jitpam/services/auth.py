"""Sign-in and credentials: passwords, API tokens, OIDC links, and who a bearer token is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from jitpam.domain.audit import Actor, AuditEvent, Outcome
from jitpam.domain.directory import User, UserKind, check_text
from jitpam.domain.errors import (
    ConcurrentChange,
    InvalidInput,
    JitpamError,
    NotFound,
    NotPermitted,
    NotSignedIn,
    TooManyAttempts,
)
from jitpam.domain.operations import STEWARD, AuditOperation
from jitpam.domain.separation import Stewardship
from jitpam.domain.tokens import (
    ApiToken,
    check_password,
    check_token_days,
    new_token_secret,
    token_digest,
)
from jitpam.services.authorization import authorize, caller_user, grant_details, may
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.directory import find_user
from jitpam.services.group_claims import apply_group_claims
from jitpam.services.ports import LoginThrottle, PasswordHasher, UnitOfWork
from jitpam.services.separation import (
    is_exempt,
    refuse_steering_what_one_approved,
    set_up_account,
)
from jitpam.services.use_case import use_case

NOT_SIGNED_IN = "not signed in: the token is missing, unknown, expired or revoked"
MAX_SECRET = 200  # longer bearer credentials are refused unread
BAD_SIGN_IN = "wrong user name or password"
MANAGE_TOKENS = AuditOperation.NEW_API_TOKEN
# Checked when the account does not exist, so a wrong name costs what a wrong password does.
_DUMMY_PASSWORD = "jitpam-no-such-account"  # noqa: S105 - deliberately not a real credential
_dummy_hashes: dict[int, str] = {}


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``secret`` is shown once and never stored; ``upn`` names its user."""

    token: ApiToken
    secret: str
    upn: str


def _hasher(ctx: ServiceContext) -> PasswordHasher:
    if ctx.passwords is None:
        raise RuntimeError("this context was built without a password hasher")
    return ctx.passwords


def _throttle(ctx: ServiceContext) -> LoginThrottle | None:
    return ctx.throttle


def _issue(
    uow: UnitOfWork, *, user: User, by: UUID, name: str, ttl: timedelta, ctx: ServiceContext
) -> IssuedToken:
    at = ctx.clock.now()
    secret = new_token_secret()
    token = ApiToken(
        id=uuid4(),
        org_id=user.org_id,
        user_id=user.id,
        name=check_text(name, field_name="token name", limit=128),
        digest=token_digest(secret),
        created_at=at,
        expires_at=at + ttl,
        created_by=by,
    )
    uow.credentials.add_token(token)
    return IssuedToken(token, secret, user.upn)


def _session(
    ctx: ServiceContext, uow: UnitOfWork, *, user: User, client: str, method: str, **details: object
) -> IssuedToken:
    """A session token for a user who just proved who they are, and its audit record."""
    issued = _issue(
        uow,
        user=user,
        by=user.id,
        name="sign-in",
        ttl=timedelta(hours=ctx.session_hours),
        ctx=ctx,
    )
    uow.record(
        AuditEvent(
            org_id=user.org_id,
            at=ctx.clock.now(),
            actor=Actor.of(user),
            operation=AuditOperation.SIGN_IN,
            target=user.upn,
            details={
                "client": client,
                "token_id": str(issued.token.id),
                "method": method,
                **details,
            },
        )
    )
    return issued


def sign_in(ctx: ServiceContext, *, upn: str, password: str, client: str) -> IssuedToken:
    """Check a local password and issue a session token. Raises NotSignedIn (the same for an
    unknown account, a wrong password and a disabled user) or TooManyAttempts. Audited either way
    when the account exists.

    The password is checked between two transactions, never inside one: a hash is slow on
    purpose, and a write transaction held meanwhile (SQLite's lock) would stop every other
    write for as long. The session is then written only if the account is still enabled and
    its password still the one checked; one changed meanwhile is refused as a wrong one."""
    hasher = _hasher(ctx)
    throttle = _throttle(ctx)
    at = ctx.clock.now()
    account = (upn or "").strip().lower()
    if throttle is not None:
        wait = throttle.attempt(account=account, client=client, at=at)
        if wait > 0:
            _audit_sign_in(ctx, account=account, client=client, ok=False, why="too_many_attempts")
            raise TooManyAttempts(f"too many failed sign-ins: try again in {int(wait) + 1} seconds")
    with ctx.reader() as uow:
        user = uow.users.get_by_upn(account) if "@" in account else None
        stored = uow.credentials.password_hash(user.id) if user else None
    if stored is None:
        # No password to check: one is checked anyway, so a wrong name costs what a wrong
        # password does.
        dummy = _dummy_hashes.get(id(hasher))
        if dummy is None:
            dummy = _dummy_hashes[id(hasher)] = hasher.hash(_DUMMY_PASSWORD)
        hasher.verify(dummy, password or "")
        ok = False
    else:
        ok = hasher.verify(stored, password or "")
    if ok and user is not None and user.enabled:
        with ctx.uow() as uow:
            now = uow.users.get(user.id)
            if now is not None and now.enabled and uow.credentials.password_hash(user.id) == stored:
                issued = _session(ctx, uow, user=now, client=client, method="password")
                uow.commit()
                if throttle is not None:
                    throttle.succeeded(account=account, client=client)
                return issued
    _audit_sign_in(ctx, account=account, client=client, ok=False, why="bad_credentials")
    raise NotSignedIn(BAD_SIGN_IN)


def _audit_sign_in(ctx: ServiceContext, *, account: str, client: str, ok: bool, why: str) -> None:
    with ctx.uow() as uow:
        user = uow.users.get_by_upn(account) if "@" in account else None
        if user is None:
            return  # no organization to record it in; the throttle still counts it
        uow.record(
            AuditEvent(
                org_id=user.org_id,
                at=ctx.clock.now(),
                actor=Actor.of(user),
                operation=AuditOperation.SIGN_IN,
                target=user.upn,
                outcome=Outcome.SUCCESS if ok else Outcome.REFUSED,
                details={"client": client, "error": why},
            )
        )
        uow.commit()


def authenticate(ctx: ServiceContext, *, secret: str) -> Caller:
    """The caller a bearer token stands for. Raises NotSignedIn, with one message for every
    reason (unknown, expired, revoked, disabled user), so a token's state is not revealed."""
    if not secret or len(secret) > MAX_SECRET:
        raise NotSignedIn(NOT_SIGNED_IN)
    with ctx.reader() as uow:
        return token_caller(uow, secret=secret, at=ctx.clock.now())


def token_caller(uow: UnitOfWork, *, secret: str, at: datetime) -> Caller:
    """``authenticate`` in a transaction the caller holds."""
    if not secret or len(secret) > MAX_SECRET:
        raise NotSignedIn(NOT_SIGNED_IN)
    token = uow.credentials.token_by_digest(token_digest(secret))
    if token is None or not token.usable_at(at):
        raise NotSignedIn(NOT_SIGNED_IN)
    user = uow.users.get(token.user_id)
    if user is None or not user.enabled or user.org_id != token.org_id:
        raise NotSignedIn(NOT_SIGNED_IN)
    return Caller(token.org_id, token.user_id)


def authenticate_oidc(
    ctx: ServiceContext, *, issuer: str, subject: str, email: str | None, email_verified: bool
) -> Caller:
    """The user an OIDC identity (already verified by the caller) stands for: by its link, or,
    on first sign-in, by a verified email equal to a user's UPN or email. Raises NotSignedIn."""
    with ctx.uow() as uow:
        user_id = uow.credentials.oidc_user(issuer, subject)
        at = ctx.clock.now()
        if user_id is None:
            if not (email and email_verified):
                raise NotSignedIn(NOT_SIGNED_IN)
            user = uow.users.get_by_upn(email.strip().lower())
            if user is None or not user.enabled:
                raise NotSignedIn(NOT_SIGNED_IN)
            uow.credentials.link_oidc(issuer, subject, user.id, at=at)
            uow.record(
                AuditEvent(
                    org_id=user.org_id,
                    at=at,
                    actor=Actor.of(user),
                    operation=AuditOperation.ADD_OIDC_LINK,
                    target=user.upn,
                    details={"issuer": issuer, "subject": subject},
                )
            )
            uow.commit()
            return Caller(user.org_id, user.id)
        found = uow.users.get(user_id)
        if found is None or not found.enabled:
            raise NotSignedIn(NOT_SIGNED_IN)
        return Caller(found.org_id, found.id)


def sign_in_oidc(
    ctx: ServiceContext,
    *,
    issuer: str,
    subject: str,
    email: str | None,
    email_verified: bool,
    client: str,
    groups: frozenset[str] | None = None,
) -> IssuedToken:
    """A browser signed in at the OIDC issuer (its ID token already verified): a session token
    for the user the identity stands for, audited like a password sign-in. Raises NotSignedIn.

    ``groups``: the values of the configured groups claim (None: not carried). In the same
    transaction, the user's memberships of the groups ``ctx.group_claims`` maps for their
    organization follow it, each change audited (``group_claims.apply_group_claims``)."""
    caller = authenticate_oidc(
        ctx, issuer=issuer, subject=subject, email=email, email_verified=email_verified
    )
    with ctx.uow() as uow:
        user = uow.users.get(caller.user_id)
        if user is None or not user.enabled:
            raise NotSignedIn(NOT_SIGNED_IN)
        org = uow.orgs.get(user.org_id)
        synced = apply_group_claims(
            uow,
            user=user,
            org_name=org.name if org is not None else "",
            claims=groups,
            claim_name=ctx.groups_claim,
            mapping=ctx.group_claims,
            at=ctx.clock.now(),
        )
        details = {"issuer": issuer, **synced}
        issued = _session(ctx, uow, user=user, client=client, method="oidc", **details)
        uow.commit()
        return issued


@dataclass(frozen=True)
class _PasswordSeen:
    """What a password change found before its transaction: whose password it sets, whether
    that is the caller's own, and the hash stored then."""

    upn: str
    own: bool
    stored: str | None


def _password_seen(ctx: ServiceContext, caller: Caller, upn: str | None) -> _PasswordSeen | None:
    """Read before a password change; None when the read fails (the use case then fails the same
    way in its own transaction, and is audited there)."""
    try:
        with ctx.reader() as uow:
            actor = caller_user(uow, caller)
            target = actor if upn is None else find_user(uow, caller.org_id, upn)
            return _PasswordSeen(
                target.upn, target.id == actor.id, uow.credentials.password_hash(target.id)
            )
    except JitpamError:
        return None


def set_password(
    ctx: ServiceContext,
    *,
    caller: Caller,
    upn: str | None,
    password: str,
    current_password: str | None = None,
) -> None:
    """Set a user's password (``upn`` None: the caller's own): one's own (with the current one,
    when there is one), or anyone's in the organization with jitpam\\Set-Password. The password
    never reaches the audit log.

    The slow part, checking the current password and hashing the new one, is done before the
    write transaction (as in ``sign_in``); the transaction then decides everything as before, and
    refuses with ConcurrentChange when the password changed in between."""
    op = AuditOperation.SET_PASSWORD
    hasher = _hasher(ctx)
    seen = _password_seen(ctx, caller, upn)
    current_ok = (
        hasher.verify(seen.stored, current_password or "")
        if seen is not None and seen.own and seen.stored is not None
        else False
    )
    hashed: str | None = None
    if seen is not None and (current_ok or not seen.own or seen.stored is None):
        try:
            hashed = hasher.hash(check_password(password))
        except InvalidInput:
            hashed = None  # refused in the use case below, in the order its rules are checked
    target_name = upn if upn is not None else (seen.upn if seen is not None else "self")
    with use_case(ctx, caller=caller, operation=op, target=target_name) as uow:
        at = ctx.clock.now()
        actor = caller_user(uow, caller)
        target = actor if upn is None else find_user(uow, caller.org_id, upn)
        details: dict[str, object] = {"user": target.upn}
        if target.id == actor.id:
            stored = uow.credentials.password_hash(actor.id)
            if stored is not None:
                if seen is None or stored != seen.stored:
                    raise ConcurrentChange(
                        "the password was changed meanwhile; try again with the current one"
                    )
                if not current_ok:
                    raise NotPermitted("the current password is not correct")
            details["by"] = "self"
        else:
            _, how = authorize(uow, caller, op, at)
            details.update(grant_details(how))
            has_password = uow.credentials.password_hash(target.id) is not None
            break_glass = is_exempt(uow, uow.orgs.control(caller.org_id), actor.id)
            if target.kind is UserKind.PERSON and has_password and not break_glass:
                # Whoever could reset an approver's password could sign in as the approver.
                raise NotPermitted(
                    f"only {target.upn} can change their password; a forgotten one is reset by a "
                    "system account"
                )
            refuse_steering_what_one_approved(uow, account=target, by=actor, at=at)
            details["tokens_revoked"] = uow.credentials.revoke_all_tokens(target.id, at=at)
            # Whoever set someone's password could have signed in as them: for good, their
            # votes on this actor's requests no longer count (separation of duties).
            details[STEWARD] = actor.upn
            if set_up_account(uow, account=target, by=actor, how=Stewardship.PASSWORD, at=at):
                details["system_account_exemption"] = "ended: its designator is now " + actor.upn
        check_password(password)  # refused here, after the rules above, as it always was
        if hashed is None:  # the read before found another account, or none
            raise ConcurrentChange("the account changed meanwhile; try again")
        uow.credentials.set_password_hash(target.id, hashed, at=at)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=target.upn,
                at=at,
                details=details,
            )
        )
        uow.commit()


def create_token(
    ctx: ServiceContext,
    *,
    caller: Caller,
    user: str | None = None,
    name: str = "api",
    expires_in_days: int = 90,
) -> IssuedToken:
    """New-ApiToken: for oneself, or (with jitpam\\New-ApiToken) for a service or application
    account, never for another person: nobody acts as an approver but the approver."""
    op = AuditOperation.NEW_API_TOKEN
    with use_case(ctx, caller=caller, operation=op, target=user or "self") as uow:
        at = ctx.clock.now()
        actor = caller_user(uow, caller)
        target = find_user(uow, caller.org_id, user) if user else actor
        details: dict[str, object] = {"user": target.upn}
        if target.id != actor.id:
            if target.kind not in (UserKind.SERVICE, UserKind.APPLICATION):
                raise NotPermitted(
                    f"tokens for another user can be created only for service and application "
                    f"accounts; {target.upn} is a {target.kind.value}"
                )
            _, how = authorize(uow, caller, MANAGE_TOKENS, at)
            refuse_steering_what_one_approved(uow, account=target, by=actor, at=at)
            details.update(grant_details(how))
            details[STEWARD] = actor.upn
            if set_up_account(uow, account=target, by=actor, how=Stewardship.API_TOKEN, at=at):
                details["system_account_exemption"] = "ended: its designator is now " + actor.upn
        if not target.enabled:
            raise InvalidInput(f"{target.upn} is disabled")
        issued = _issue(
            uow,
            user=target,
            by=actor.id,
            name=name,
            ttl=timedelta(days=check_token_days(expires_in_days)),
            ctx=ctx,
        )
        details.update(
            {"token_id": str(issued.token.id), "expires_at": issued.token.expires_at.isoformat()}
        )
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=target.upn,
                at=at,
                details=details,
            )
        )
        uow.commit()
        return issued


@dataclass(frozen=True)
class TokenView:
    """A token with the UPNs of its user and of who made it (``names``), read in the same
    transaction."""

    token: ApiToken
    names: Mapping[UUID, str]


def list_tokens(
    ctx: ServiceContext, *, caller: Caller, user: str | None = None, everyone: bool = False
) -> list[TokenView]:
    """One's own tokens; another user's, or everyone's, with jitpam\\New-ApiToken."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        actor = caller_user(uow, caller)
        target = find_user(uow, caller.org_id, user) if user else actor
        if (everyone or target.id != actor.id) and not may(
            uow, user=actor, operation=MANAGE_TOKENS, at=at
        ).allowed:
            raise NotPermitted(f"{actor.upn} may list only their own tokens")
        tokens = uow.credentials.tokens(caller.org_id, None if everyone else target.id)
        named = {t.user_id for t in tokens} | {t.created_by for t in tokens}
        names = uow.users.upns(caller.org_id, named)
        return [TokenView(t, names) for t in tokens]


def revoke_token(ctx: ServiceContext, *, caller: Caller, token_id: UUID) -> ApiToken:
    """Revoke one's own token, or anyone's in the organization with jitpam\\New-ApiToken."""
    op = AuditOperation.REVOKE_API_TOKEN
    with use_case(ctx, caller=caller, operation=op, target=str(token_id)) as uow:
        at = ctx.clock.now()
        actor = caller_user(uow, caller)
        token = uow.credentials.token(token_id)
        if token is None or token.org_id != caller.org_id:
            raise NotFound(f"no token {token_id} in this organization")
        if (
            token.user_id != actor.id
            and not may(uow, user=actor, operation=MANAGE_TOKENS, at=at).allowed
        ):
            raise NotFound(f"no token {token_id} in this organization")
        uow.credentials.revoke_token(token.id, at=at)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=str(token.id),
                at=at,
                details={"user_id": str(token.user_id)},
            )
        )
        uow.commit()
        return token


def sign_out(ctx: ServiceContext, *, secret: str) -> None:
    """Revoke the token a request came with (audited as Sign-Out). Raises NotSignedIn."""
    caller = authenticate(ctx, secret=secret)
    with ctx.uow() as uow:
        token = uow.credentials.token_by_digest(token_digest(secret))
        actor = uow.users.get(caller.user_id)
        if token is None or actor is None:
            raise NotSignedIn(NOT_SIGNED_IN)
        at = ctx.clock.now()
        uow.credentials.revoke_token(token.id, at=at)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=AuditOperation.SIGN_OUT,
                target=actor.upn,
                at=at,
                details={"token_id": str(token.id)},
            )
        )
        uow.commit()
