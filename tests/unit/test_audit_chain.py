"""The audit log is tamper-evident (RELIABILITY.md guarantee 13).

Flip a byte, delete, insert, reorder, truncate: each is detected by ``verify_chain``. A truncated
tail leaves a valid shorter chain, so it is caught against the stored head or a checkpoint.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitpam.domain.audit import (
    GENESIS_HASH,
    Actor,
    AuditEvent,
    AuditRecord,
    ChainReport,
    Checkpoint,
    Outcome,
    chain,
    record_digest,
    verify_chain,
)
from jitpam.domain.operations import AuditOperation

ORG = uuid4()
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
OPERATIONS = [
    (AuditOperation.NEW_REQUEST, "request 1 (Task 'Exchange\\New-MoveRequest')"),
    (AuditOperation.APPROVE_REQUEST, "request 1 (Task 'Exchange\\New-MoveRequest')"),
    (AuditOperation.TEST_ACCESS, "Exchange\\New-MoveRequest"),
    (AuditOperation.TEST_ACCESS, "Exchange\\Search-Mailbox"),
    (AuditOperation.REVOKE_AUTHORIZATION, "request 1 (Task 'Exchange\\New-MoveRequest')"),
    (AuditOperation.DISABLE_ACCESS_CONTROL, "organization contoso"),
]


def build_chain(n: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    seq, head = 0, GENESIS_HASH
    for i in range(n):
        operation, target = OPERATIONS[i % len(OPERATIONS)]
        event = AuditEvent(
            org_id=ORG,
            at=T0 + timedelta(seconds=i),
            actor=Actor(str(uuid4()), f"user{i}@contoso.com"),
            operation=operation,
            target=target,
            outcome=Outcome.REFUSED if i % 3 == 2 else Outcome.SUCCESS,
            details={"reason": f"CHG-{1000 + i}", "hours": 4, "approvers": ["alice", "bob"]},
        )
        record = chain(event, prev_seq=seq, prev_hash=head)
        records.append(record)
        seq, head = record.seq, record.hash
    return records


def forge(*, seq: int, prev_hash: str, target: str) -> AuditRecord:
    """A record whose hash is correctly computed over its (forged) content."""
    event = AuditEvent(
        org_id=ORG,
        at=T0 + timedelta(minutes=5),
        actor=Actor("intruder", "mallory@contoso.com"),
        operation=AuditOperation.APPROVE_REQUEST,
        target=target,
    )
    return chain(event, prev_seq=seq - 1, prev_hash=prev_hash)


def head_of(records: list[AuditRecord]) -> tuple[int, str]:
    return records[-1].seq, records[-1].hash


def checkpoint_of(records: list[AuditRecord], seq: int | None = None) -> Checkpoint:
    record = records[-1] if seq is None else records[seq - 1]
    return Checkpoint(org_id=ORG, seq=record.seq, head_hash=record.hash, at=T0 + timedelta(hours=1))


def flip_a_character(text: str, position: int = 0) -> str:
    """Change exactly one character (one byte of ASCII text) of ``text``."""
    position %= len(text)
    replacement = "X" if text[position] != "X" else "Y"
    return text[:position] + replacement + text[position + 1 :]


def assert_broken(report: ChainReport, *, bad_seq: int, mentions: str) -> None:
    assert not report.ok
    assert report.bad_seq == bad_seq
    assert report.problem is not None
    assert mentions in report.problem


# --- a clean chain ------------------------------------------------------------------------------


def test_clean_chain_verifies_with_its_count_and_head() -> None:
    records = build_chain(7)
    report = verify_chain(records, stored_head=head_of(records), checkpoint=checkpoint_of(records))
    assert report == ChainReport(ok=True, records=7, head_seq=7, head_hash=records[-1].hash)


def test_clean_chain_verifies_against_an_older_checkpoint() -> None:
    records = build_chain(7)
    report = verify_chain(records, checkpoint=checkpoint_of(records, seq=4))
    assert report.ok
    assert (report.records, report.head_seq) == (7, 7)


def test_empty_chain_verifies_and_its_head_is_the_genesis_hash() -> None:
    report = verify_chain([], stored_head=(0, GENESIS_HASH))
    assert report == ChainReport(ok=True, records=0, head_seq=0, head_hash=GENESIS_HASH)


def test_each_record_follows_the_previous_one() -> None:
    records = build_chain(4)
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert records[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    assert len({r.hash for r in records}) == 4


# --- a changed field ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"target": "flip"}, id="target"),
        pytest.param({"actor_id": "flip"}, id="actor_id"),
        pytest.param({"actor_name": "flip"}, id="actor_name"),
        pytest.param({"operation": "flip"}, id="operation"),
        pytest.param({"outcome": Outcome.SUCCESS}, id="outcome"),
        pytest.param({"at": T0 + timedelta(seconds=2, microseconds=1)}, id="at+1us"),
        pytest.param({"org_id": uuid4()}, id="org_id"),
    ],
)
def test_a_changed_field_is_detected_at_that_record(change: dict[str, Any]) -> None:
    records = build_chain(5)
    victim = records[2]  # seq 3, refused, at T0 + 2 s
    changes = {
        key: flip_a_character(getattr(victim, key), 3) if value == "flip" else value
        for key, value in change.items()
    }
    assert all(getattr(victim, key) != value for key, value in changes.items())
    records[2] = dataclasses.replace(victim, **changes)
    assert_broken(verify_chain(records), bad_seq=3, mentions="record 3 was altered")


def test_one_flipped_byte_in_the_details_is_detected() -> None:
    records = build_chain(5)
    victim = records[1]
    details = dict(victim.details, reason=flip_a_character(victim.details["reason"], 4))
    records[1] = dataclasses.replace(victim, details=details)
    assert_broken(verify_chain(records), bad_seq=2, mentions="altered")


def test_a_changed_number_in_the_details_is_detected() -> None:
    records = build_chain(5)
    records[3] = dataclasses.replace(records[3], details=dict(records[3].details, hours=40))
    assert_broken(verify_chain(records), bad_seq=4, mentions="altered")


def test_a_rewritten_hash_does_not_hide_a_change_from_the_next_record() -> None:
    records = build_chain(5)
    victim = records[1]
    forged = dataclasses.replace(victim, target=flip_a_character(victim.target))
    rehashed = dataclasses.replace(
        forged,
        hash=record_digest(forged, seq=forged.seq, prev_hash=forged.prev_hash),
    )
    records[1] = rehashed
    assert_broken(verify_chain(records), bad_seq=3, mentions="record 3 does not follow record 2")


def test_a_whole_chain_rewritten_after_a_change_is_caught_by_the_checkpoint() -> None:
    original = build_chain(6)
    checkpoint = checkpoint_of(original, seq=5)
    # The forger changes record 3 and recomputes every later hash: the chain itself is valid.
    rewritten = original[:2]
    for record in original[2:]:
        event = AuditEvent(
            org_id=record.org_id,
            at=record.at,
            actor=Actor(record.actor_id, record.actor_name),
            operation=AuditOperation(record.operation),
            target="nothing to see" if record.seq == 3 else record.target,
            outcome=record.outcome,
            details=record.details,
        )
        rewritten.append(chain(event, prev_seq=rewritten[-1].seq, prev_hash=rewritten[-1].hash))
    assert verify_chain(rewritten).ok
    assert_broken(
        verify_chain(rewritten, checkpoint=checkpoint),
        bad_seq=5,
        mentions="differs from the checkpoint",
    )


# --- deleted, inserted, reordered records ------------------------------------------------------


def test_a_deleted_middle_record_is_detected() -> None:
    records = build_chain(6)
    del records[2]
    assert_broken(verify_chain(records), bad_seq=4, mentions="record 3 is missing or out of order")


def test_a_deleted_first_record_is_detected() -> None:
    records = build_chain(4)
    del records[0]
    assert_broken(verify_chain(records), bad_seq=2, mentions="record 1 is missing")


def test_an_inserted_record_reusing_a_sequence_number_is_detected() -> None:
    records = build_chain(5)
    # Forged seq 3 after record 2 with a correct hash: it passes, but the real record 3 no longer
    # fits after it.
    forged = forge(seq=3, prev_hash=records[1].hash, target="Exchange\\Search-Mailbox")
    records.insert(2, forged)
    assert_broken(verify_chain(records), bad_seq=3, mentions="missing or out of order (found 3)")


@pytest.mark.parametrize(
    ("seq", "prev_from"),
    [
        pytest.param(4, 1, id="wrong-seq-right-prev"),
        pytest.param(3, 0, id="right-seq-wrong-prev"),
        pytest.param(3, None, id="right-seq-genesis-prev"),
    ],
)
def test_an_inserted_record_with_a_correct_hash_but_wrong_place_is_detected(
    seq: int, prev_from: int | None
) -> None:
    records = build_chain(5)
    prev_hash = GENESIS_HASH if prev_from is None else records[prev_from].hash
    forged = forge(seq=seq, prev_hash=prev_hash, target="Exchange\\Search-Mailbox")
    records.insert(2, forged)
    report = verify_chain(records)
    assert not report.ok
    assert report.bad_seq == seq
    assert report.head_seq == 2  # everything before the forgery is still trusted


def test_a_record_appended_at_the_end_is_caught_by_the_stored_head() -> None:
    records = build_chain(4)
    head = head_of(records)
    records.append(forge(seq=5, prev_hash=records[-1].hash, target="x"))
    assert verify_chain(records).ok  # a well-formed extension on its own
    assert_broken(verify_chain(records, stored_head=head), bad_seq=6, mentions="added at the end")


def test_a_head_with_the_right_sequence_and_another_hash_says_the_hash_does_not_match() -> None:
    records = build_chain(4)
    report = verify_chain(records, stored_head=(4, "0" * 64))
    assert_broken(report, bad_seq=4, mentions="the head's hash does not match record 4")
    assert "removed or added" not in (report.problem or "")
    assert (report.head_seq, report.head_hash) == (3, records[2].hash)


def test_the_last_record_rewritten_with_a_hash_of_its_own_is_caught_by_the_head() -> None:
    records = build_chain(4)
    head = head_of(records)
    records[-1] = forge(seq=4, prev_hash=records[2].hash, target="x")
    assert verify_chain(records).ok  # the rewritten record chains on its own
    assert_broken(
        verify_chain(records, stored_head=head), bad_seq=4, mentions="the head or that record"
    )


def test_two_swapped_records_are_detected() -> None:
    records = build_chain(6)
    records[2], records[4] = records[4], records[2]
    assert_broken(verify_chain(records), bad_seq=5, mentions="record 3 is missing or out of order")


def test_two_adjacent_swapped_records_are_detected() -> None:
    records = build_chain(6)
    records[3], records[4] = records[4], records[3]
    assert_broken(verify_chain(records), bad_seq=5, mentions="out of order")


# --- a truncated tail ---------------------------------------------------------------------------


def test_a_truncated_tail_looks_like_a_valid_shorter_chain_on_its_own() -> None:
    records = build_chain(6)
    report = verify_chain(records[:4])
    assert report.ok  # which is why the head and checkpoints are kept
    assert report.head_seq == 4


def test_a_truncated_tail_is_detected_against_a_checkpoint() -> None:
    records = build_chain(6)
    checkpoint = checkpoint_of(records)
    report = verify_chain(records[:4], checkpoint=checkpoint)
    assert_broken(report, bad_seq=5, mentions="before checkpoint record 6: the tail was truncated")
    assert (report.records, report.head_seq) == (4, 4)


def test_a_chain_truncated_to_nothing_is_detected_against_a_checkpoint() -> None:
    records = build_chain(3)
    report = verify_chain([], checkpoint=checkpoint_of(records))
    assert_broken(report, bad_seq=1, mentions="truncated")


def test_a_truncated_tail_is_detected_against_the_stored_head() -> None:
    records = build_chain(6)
    report = verify_chain(records[:5], stored_head=head_of(records))
    assert_broken(report, bad_seq=6, mentions="the chain ends at record 5 but its head says 6")


# --- property: any single tampering is detected --------------------------------------------------

MUTATIONS = ("change", "delete", "insert", "append", "swap", "duplicate", "truncate")
FIELDS = (
    "seq",
    "at",
    "actor_id",
    "actor_name",
    "operation",
    "target",
    "outcome",
    "details",
    "prev_hash",
    "hash",
    "org_id",
)
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@st.composite
def chains(draw: st.DrawFn) -> list[AuditRecord]:
    n = draw(st.integers(min_value=1, max_value=10))
    records: list[AuditRecord] = []
    seq, head = 0, GENESIS_HASH
    for i in range(n):
        event = AuditEvent(
            org_id=ORG,
            at=T0 + timedelta(microseconds=draw(st.integers(0, 10**9))),
            actor=Actor(draw(texts), draw(texts)),
            operation=draw(st.sampled_from([op for op, _ in OPERATIONS])),
            target=draw(texts),
            outcome=draw(st.sampled_from(list(Outcome))),
            details=draw(
                st.dictionaries(
                    st.sampled_from(["reason", "hours", "n"]),
                    st.integers(-5, 5) | texts,
                    max_size=3,
                )
            ),
        )
        record = chain(event, prev_seq=seq, prev_hash=head)
        records.append(record)
        seq, head = record.seq, record.hash
        assert i + 1 == seq
    return records


def changed(record: AuditRecord, name: str, data: st.DataObject) -> AuditRecord:
    value = getattr(record, name)
    new: Any
    if name == "seq":
        new = value + data.draw(st.sampled_from([-1, 1, 2]))
    elif name == "at":
        new = value + timedelta(microseconds=data.draw(st.sampled_from([-1, 1, 3600 * 10**6])))
    elif name == "outcome":
        new = Outcome.SUCCESS if value is Outcome.REFUSED else Outcome.REFUSED
    elif name == "org_id":
        new = uuid4()
    elif name == "details":
        new = dict(value)
        key = data.draw(st.sampled_from(["reason", "hours", "n", "extra"]))
        if key in new:
            del new[key]
        else:
            new[key] = "injected"
    elif value:
        new = flip_a_character(value, data.draw(st.integers(0, len(value) - 1)))
    else:
        new = "X"
    assert new != value
    return dataclasses.replace(record, **{name: new})


@settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(records=chains(), mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_any_single_tampering_is_detected(
    records: list[AuditRecord], mutation: str, data: st.DataObject
) -> None:
    head, checkpoint = head_of(records), checkpoint_of(records)
    assert verify_chain(records, stored_head=head, checkpoint=checkpoint).ok
    n = len(records)
    tampered = list(records)
    index = data.draw(st.integers(0, n - 1), label="index")
    if mutation == "change":
        name = data.draw(st.sampled_from(FIELDS), label="field")
        tampered[index] = changed(records[index], name, data)
    elif mutation == "delete":
        del tampered[index]
    elif mutation == "insert":
        # A forged record with a correct hash, placed to fit (same seq and prev as the record it
        # pushes along) or not: the forger may also append after the last record.
        position = data.draw(st.integers(0, n), label="position")
        fitting_prev = GENESIS_HASH if position == 0 else tampered[position - 1].hash
        seq = data.draw(st.sampled_from([position + 1, 1, n, n + 1]), label="forged seq")
        prev = data.draw(st.sampled_from([fitting_prev, GENESIS_HASH, records[index].hash]))
        tampered.insert(position, forge(seq=seq, prev_hash=prev, target=data.draw(texts)))
    elif mutation == "append":
        # A well-formed extension: only the stored head can tell it was not written by jitpam.
        tampered.append(forge(seq=n + 1, prev_hash=records[-1].hash, target=data.draw(texts)))
    elif mutation == "swap":
        if n < 2:
            return
        other = data.draw(st.integers(0, n - 1).filter(lambda j: j != index), label="other")
        tampered[index], tampered[other] = tampered[other], tampered[index]
    elif mutation == "duplicate":
        tampered.insert(index + 1, records[index])
    else:  # truncate: drop the last k records
        tampered = tampered[:index]

    assert not verify_chain(tampered, stored_head=head, checkpoint=checkpoint).ok
    # The stored head alone catches it too; a checkpoint alone could not tell a forged append
    # from a legitimate later record, so it is not asked to.
    assert not verify_chain(tampered, stored_head=head).ok


def test_a_record_is_hashed_as_earlier_versions_stored_it() -> None:
    """Existing chains verify only if the same content still gives the same hash: the operation
    is stored as its name, the actor as id and UPN, text cleaned the same way. The hash was
    computed by the version before audit operations became an enumeration."""
    event = AuditEvent(
        org_id=UUID(int=7),
        at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        actor=Actor(str(UUID(int=9)), "a@b.c"),
        operation=AuditOperation.APPROVE_REQUEST,
        target="x\x00y",
        details={"requester": "r@b.c", "n": [1, "\ud800"]},
    )
    record = chain(event, prev_seq=3, prev_hash="ab" * 32)
    assert record.operation == "Approve-ElevatedAccessRequest"
    assert type(record.operation) is str
    assert record.hash == "e273bdeeebafeb534c80972a39b91bf4b4fe89abd9e93d503c08167ee49c692b"
    assert record_digest(record, seq=4, prev_hash="ab" * 32) == record.hash
