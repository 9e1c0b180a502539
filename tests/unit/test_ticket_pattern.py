"""An organization's ticket pattern is checked once, when it is set."""

from __future__ import annotations

import pytest

from jitpam.domain.control import check_ticket_pattern
from jitpam.domain.errors import InvalidInput


@pytest.mark.parametrize("pattern", [r"(CHG|INC)-\d+", r"[A-Z]+-\d{3,}", r"\bTICKET-\d{4}\b"])
def test_ordinary_ticket_patterns_are_accepted(pattern: str) -> None:
    assert check_ticket_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["(a+)+$", "(x*)*", r"(\d{2,})+", "(ab+c)*d"])
def test_patterns_that_could_backtrack_forever_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidInput, match="repeats a group that repeats"):
        check_ticket_pattern(pattern)


def test_a_broken_pattern_is_refused_and_none_clears_it() -> None:
    with pytest.raises(InvalidInput, match="not a valid regular expression"):
        check_ticket_pattern("(CHG-")
    assert check_ticket_pattern(None) is None
    assert check_ticket_pattern("") is None
