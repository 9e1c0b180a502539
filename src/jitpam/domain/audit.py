"""The audit log's records and its hash chain.

Each organization has one chain. A record's hash covers its sequence number, the previous record's
hash and its whole content in a canonical encoding, so a changed, deleted, inserted or reordered
record breaks verification. A truncated tail leaves a valid (shorter) chain: it is detected only
against a checkpoint (sequence number + head hash, signed) kept outside the database.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from jitpam.domain.directory import User
from jitpam.domain.operations import AuditOperation
from jitpam.domain.timeutil import canonical_json, iso

GENESIS_HASH = "0" * 64
SYSTEM_ACTOR = "jitpam"


class Outcome(StrEnum):
    SUCCESS = "success"
    REFUSED = "refused"
    FAILURE = "failure"  # allowed and carried out, but it failed (a task run's own failure)


@dataclass(frozen=True)
class Actor:
    """Who did what an audit record says: a user (their id and UPN), or jitpam itself."""

    id: str
    name: str

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(str(user.id), user.upn)


JITPAM = Actor(SYSTEM_ACTOR, SYSTEM_ACTOR)  # installation-level changes, sweeps, Auto approvals


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    """What happened, before it takes its place in the chain: an operation of the enumeration
    (never free text), done by an ``Actor`` in one organization."""

    org_id: UUID
    at: datetime
    actor: Actor
    operation: AuditOperation
    target: str
    outcome: Outcome = Outcome.SUCCESS
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    """An event in its place in the chain, as stored. ``operation`` is the stored text: an
    ``AuditOperation``'s value, or a name another version wrote (``AuditOperation.named``)."""

    org_id: UUID
    seq: int
    at: datetime
    actor_id: str
    actor_name: str
    operation: str
    target: str
    outcome: Outcome
    details: dict[str, Any]
    prev_hash: str
    hash: str
    damaged: str | None = None  # set when the stored row could not even be read


def record_digest(record: AuditRecord, *, seq: int, prev_hash: str) -> str:
    """SHA-256 over the canonical encoding of a record's content placed at (``seq``,
    ``prev_hash``): the hash a record with that content there must carry."""
    return _digest(
        org_id=record.org_id,
        seq=seq,
        prev_hash=prev_hash,
        at=record.at,
        actor_id=record.actor_id,
        actor_name=record.actor_name,
        operation=record.operation,
        target=record.target,
        outcome=record.outcome,
        details=record.details,
    )


def _digest(
    *,
    org_id: UUID,
    seq: int,
    prev_hash: str,
    at: datetime,
    actor_id: str,
    actor_name: str,
    operation: str,
    target: str,
    outcome: Outcome,
    details: dict[str, Any],
) -> str:
    body = canonical_json(
        {
            "org_id": str(org_id),
            "seq": seq,
            "prev_hash": prev_hash,
            "at": iso(at),
            "actor_id": actor_id,
            "actor_name": actor_name,
            "operation": operation,
            "target": target,
            "outcome": outcome.value,
            "details": details,
        }
    )
    return hashlib.sha256(body).hexdigest()


MAX_TARGET = 512
MAX_NAME = 256


def clean_text(text: str, limit: int | None = None) -> str:
    """Text as it can be stored everywhere: no NUL, no lone surrogates, at most ``limit`` chars."""
    out = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return out[:limit] if limit is not None else out


def clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    return value


def chain(event: AuditEvent, *, prev_seq: int, prev_hash: str) -> AuditRecord:
    """Place an event after the chain head (prev_seq, prev_hash).

    The event's text is cleaned and bounded first, so what is hashed is exactly what is stored.
    """
    seq = prev_seq + 1
    actor_id = clean_text(event.actor.id, 64)
    actor_name = clean_text(event.actor.name, MAX_NAME)
    operation = clean_text(event.operation, 64)
    target = clean_text(event.target, MAX_TARGET)
    details = clean_value(event.details)
    digest = _digest(
        org_id=event.org_id,
        seq=seq,
        prev_hash=prev_hash,
        at=event.at,
        actor_id=actor_id,
        actor_name=actor_name,
        operation=operation,
        target=target,
        outcome=event.outcome,
        details=details,
    )
    return AuditRecord(
        org_id=event.org_id,
        seq=seq,
        at=event.at,
        actor_id=actor_id,
        actor_name=actor_name,
        operation=operation,
        target=target,
        outcome=event.outcome,
        details=details,
        prev_hash=prev_hash,
        hash=digest,
    )


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the chain had ``seq`` records ending in ``head_hash`` at ``at``."""

    org_id: UUID
    seq: int
    head_hash: str
    at: datetime
    key_id: str = ""
    signature: str = ""

    def payload(self) -> bytes:
        return canonical_json(
            {
                "kind": "jitpam-audit-checkpoint",
                "org_id": str(self.org_id),
                "seq": self.seq,
                "head_hash": self.head_hash,
                "at": iso(self.at),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "org_id": str(self.org_id),
            "seq": self.seq,
            "head_hash": self.head_hash,
            "at": iso(self.at),
            "key_id": self.key_id,
            "signature": self.signature,
        }


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    records: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    bad_seq: int | None = None


def verify_chain(
    records: Iterable[AuditRecord],
    *,
    stored_head: tuple[int, str] | Callable[[], tuple[int, str]] | None = None,
    checkpoint: Checkpoint | None = None,
) -> ChainReport:
    """Walk the chain from its start in sequence order and report the first break.

    ``stored_head`` is the chain head row (its own copy of the last seq and hash), or a function
    that reads it when the walk is over (so records appended during a walk are compared with the
    head that names them); ``checkpoint`` an exported, already signature-checked checkpoint.
    Detects changed, deleted, inserted and reordered records, and a tail truncated before a
    checkpoint.
    """
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    before_last = GENESIS_HASH  # the hash the last record follows
    checkpoint_seen = checkpoint is None or checkpoint.seq == 0
    for rec in records:
        count += 1
        if rec.damaged is not None:
            return ChainReport(
                False,
                count,
                rec.seq - 1,
                prev_hash,
                f"record {rec.seq} cannot be read: {rec.damaged}",
                rec.seq,
            )
        if rec.seq != expected_seq:
            return ChainReport(
                False,
                count,
                expected_seq - 1,
                prev_hash,
                f"record {expected_seq} is missing or out of order (found {rec.seq})",
                rec.seq,
            )
        if not hmac.compare_digest(rec.prev_hash, prev_hash):
            return ChainReport(
                False,
                count,
                rec.seq - 1,
                prev_hash,
                f"record {rec.seq} does not follow record {rec.seq - 1}",
                rec.seq,
            )
        digest = record_digest(rec, seq=rec.seq, prev_hash=rec.prev_hash)
        if not hmac.compare_digest(digest, rec.hash):
            return ChainReport(
                False,
                count,
                rec.seq - 1,
                prev_hash,
                f"record {rec.seq} was altered (its hash does not match)",
                rec.seq,
            )
        if checkpoint is not None and rec.seq == checkpoint.seq:
            if not hmac.compare_digest(rec.hash, checkpoint.head_hash):
                return ChainReport(
                    False,
                    count,
                    rec.seq,
                    rec.hash,
                    f"record {rec.seq} differs from the checkpoint",
                    rec.seq,
                )
            checkpoint_seen = True
        before_last, prev_hash = prev_hash, rec.hash
        expected_seq += 1
    head_seq = expected_seq - 1
    if callable(stored_head):
        stored_head = stored_head()
    if (
        stored_head is not None
        and head_seq > 0
        and stored_head[0] == head_seq
        and not hmac.compare_digest(stored_head[1], prev_hash)
    ):
        # The head names the last record but not its hash: the head was edited, or that record
        # was rewritten with a hash of its own. Either way the last record is not trusted.
        return ChainReport(
            False,
            count,
            head_seq - 1,
            before_last,
            f"the head's hash does not match record {head_seq}, the last one: "
            "the head or that record was changed",
            head_seq,
        )
    if stored_head is not None and stored_head != (head_seq, prev_hash):
        return ChainReport(
            False,
            count,
            head_seq,
            prev_hash,
            f"the chain ends at record {head_seq} but its head says "
            f"{stored_head[0]}: records were removed or added at the end",
            head_seq + 1,
        )
    if not checkpoint_seen and checkpoint is not None:
        return ChainReport(
            False,
            count,
            head_seq,
            prev_hash,
            f"the chain ends at record {head_seq}, before checkpoint record "
            f"{checkpoint.seq}: the tail was truncated",
            head_seq + 1,
        )
    return ChainReport(True, count, head_seq, prev_hash)
