"""What every request body and parameter of the API and the pages must be, before any route.

``Body`` is the base of every JSON body: unknown fields are refused (a misspelt field must not
answer 200 and change nothing), and no text in it may hold what the databases cannot store
(``jitpam.domain.text``). ``storable_parameters`` does the same for query and path parameters,
on every route of the app. Both answer 422 naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from jitpam.domain.text import unstorable


def _first_unstorable(value: Any) -> str | None:
    if isinstance(value, str):
        return unstorable(value)
    if isinstance(value, dict):
        return _first_unstorable_of([*value.keys(), *value.values()])
    if isinstance(value, list | tuple | set | frozenset):
        return _first_unstorable_of(value)
    return None


def _first_unstorable_of(values: Iterable[Any]) -> str | None:
    for item in values:
        if (problem := _first_unstorable(item)) is not None:
            return problem
    return None


class Body(BaseModel):
    """A request body: known fields only, storable text only."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if (problem := _first_unstorable(value)) is not None:
            raise PydanticCustomError(
                "unstorable_text",
                "contains {problem}, which jitpam does not accept",
                {"problem": problem},
            )
        return value


def unstorable_parameter(where: str, name: str, value: str, problem: str) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "unstorable_text",
                "loc": (where, name),
                "msg": f"contains {problem}, which jitpam does not accept",
                "input": value,
            }
        ]
    )


async def storable_parameters(request: Request) -> None:
    """Refuse a query or path parameter holding what cannot be stored (422 naming it)."""
    if request.scope.get("query_string"):
        for name, value in request.query_params.multi_items():
            problem = unstorable(name) or unstorable(value)
            if problem is not None:
                raise unstorable_parameter("query", name, value, problem)
    for name, value in request.path_params.items():
        if isinstance(value, str) and (problem := unstorable(value)) is not None:
            raise unstorable_parameter("path", name, value, problem)
