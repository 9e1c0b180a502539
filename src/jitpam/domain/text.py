"""Text jitpam accepts from anyone: what every database it runs on can store.

PostgreSQL refuses a NUL character in text, and no database can store half of a UTF-16
surrogate pair (JSON's ``"\\ud800"`` decodes to one). Such text is refused where it comes in, so
it never reaches a transaction it would fail, let alone one shared with other callers' work.
"""

from __future__ import annotations

from jitpam.domain.errors import InvalidInput


def unstorable(text: str) -> str | None:
    """What in ``text`` cannot be stored (a phrase for an error message), or None."""
    if "\x00" in text:
        return "a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone UTF-16 surrogate"
    return None


def require_storable(text: str, what: str) -> str:
    """``text`` itself, or InvalidInput naming ``what`` when it holds what cannot be stored."""
    problem = unstorable(text)
    if problem is not None:
        raise InvalidInput(f"{what} contains {problem}, which jitpam does not accept")
    return text
