"""SCIM as jitpam reads it (domain/scim.py): filters, resources, PATCH operations and pages."""

from __future__ import annotations

from typing import Any

import pytest

from jitpam.domain.scim import (
    GROUP_SCHEMA,
    MAX_RESULTS,
    PATCH_SCHEMA,
    USER_SCHEMA,
    Filter,
    GroupFields,
    ScimInvalid,
    UserFields,
    group_from_resource,
    page_bounds,
    parse_bool,
    parse_filter,
    parse_patch,
    patch_group,
    patch_user,
    user_from_resource,
)

DAVE = UserFields("dave@contoso.com", "Dave", "dave@contoso.com", True, "ext")


def ops(*operations: dict[str, Any], schema: str = USER_SCHEMA) -> Any:
    return parse_patch({"schemas": [PATCH_SCHEMA], "Operations": list(operations)}, schema=schema)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "a@contoso.com"', Filter("username", "a@contoso.com")),
        ('USERNAME EQ "A@contoso.com"', Filter("username", "A@contoso.com")),
        ('externalId eq "x \\"quoted\\""', Filter("externalid", 'x "quoted"')),
        (f'{USER_SCHEMA}:displayName eq "Dave"', Filter("displayname", "Dave")),
    ],
)
def test_filters_of_the_eq_form_name_the_attribute_in_lowercase(
    text: str, expected: Filter
) -> None:
    assert parse_filter(text, resource="users") == expected


@pytest.mark.parametrize(
    "text",
    ['userName co "a"', 'userName eq "a" and active eq true', "userName eq a", 'title eq "x"'],
)
def test_any_other_filter_is_invalid_filter(text: str) -> None:
    with pytest.raises(ScimInvalid) as refused:
        parse_filter(text, resource="users")
    assert refused.value.scim_type == "invalidFilter"


@pytest.mark.parametrize("escaped", ["\\q", "\\u00", "\\u0000", "\\ud800", "a\\u0000b"])
def test_a_quoted_value_that_is_no_json_string_or_decodes_to_unstorable_text_is_refused(
    escaped: str,
) -> None:
    with pytest.raises(ScimInvalid) as in_filter:
        parse_filter(f'userName eq "{escaped}"', resource="users")
    assert in_filter.value.scim_type == "invalidFilter"
    with pytest.raises(ScimInvalid) as in_path:
        ops({"op": "remove", "path": f'members[value eq "{escaped}"]'}, schema=GROUP_SCHEMA)
    assert in_path.value.scim_type == "invalidPath"


def test_groups_are_not_filtered_by_user_name() -> None:
    with pytest.raises(ScimInvalid, match="cannot be filtered"):
        parse_filter('userName eq "a"', resource="groups")


def test_a_user_body_falls_back_for_what_it_does_not_give() -> None:
    fields = user_from_resource(
        {
            "schemas": [USER_SCHEMA],
            "userName": "ellen@contoso.com",
            "name": {"givenName": "Ellen", "familyName": "Adams"},
            "emails": [
                {"value": "other@contoso.com", "type": "home"},
                {"value": "ellen.adams@contoso.com", "type": "work", "primary": True},
            ],
            "active": "False",
            "password": "never kept",
        }
    )
    assert fields == UserFields(
        "ellen@contoso.com", "Ellen Adams", "ellen.adams@contoso.com", False, None
    )
    bare = user_from_resource({"userName": "frank@contoso.com"})
    assert bare == UserFields("frank@contoso.com", "frank", None, True, None)
    with pytest.raises(ScimInvalid, match="userName is required"):
        user_from_resource({"displayName": "nobody"})


def test_booleans_may_be_entra_ids_strings() -> None:
    assert parse_bool("False", field="active") is False
    assert parse_bool("True", field="active") is True
    assert parse_bool(False, field="active") is False
    with pytest.raises(ScimInvalid):
        parse_bool("no", field="active")


def test_patch_ops_in_any_case_with_and_without_path() -> None:
    after = patch_user(
        DAVE,
        ops(
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "replace", "value": {"displayName": "David", "name.givenName": "D"}},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "d@contoso.com"},
            {"op": "remove", "path": "externalId"},
        ),
    )
    assert after == UserFields("dave@contoso.com", "David", "d@contoso.com", False, None)


def test_required_user_attributes_cannot_be_removed() -> None:
    with pytest.raises(ScimInvalid) as refused:
        patch_user(DAVE, ops({"op": "remove", "path": "userName"}))
    assert refused.value.scim_type == "mutability"


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({"Operations": [{"op": "add", "path": "x", "value": 1}]}, "invalidSyntax"),
        ({"schemas": [PATCH_SCHEMA], "Operations": []}, "invalidSyntax"),
        ({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "move", "path": "x"}]}, "invalidSyntax"),
        ({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "remove"}]}, "noTarget"),
        ({"schemas": [PATCH_SCHEMA], "Operations": [{"op": "add", "path": "a[b"}]}, "invalidPath"),
    ],
)
def test_malformed_patch_bodies(body: dict[str, Any], scim_type: str) -> None:
    with pytest.raises(ScimInvalid) as refused:
        parse_patch(body, schema=USER_SCHEMA)
    assert refused.value.scim_type == scim_type


def test_members_add_remove_by_filter_and_by_value_and_replace() -> None:
    group = GroupFields("Sales", None, ("a",))
    added = patch_group(
        group,
        ops(
            {"op": "Add", "path": "members", "value": [{"value": "b"}, {"value": "a"}]},
            schema=GROUP_SCHEMA,
        ),
    )
    assert added.members == ("a", "b")
    okta = patch_group(
        added, ops({"op": "remove", "path": 'members[value eq "a"]'}, schema=GROUP_SCHEMA)
    )
    assert okta.members == ("b",)
    entra = patch_group(
        added,
        ops({"op": "Remove", "path": "members", "value": [{"value": "b"}]}, schema=GROUP_SCHEMA),
    )
    assert entra.members == ("a",)
    emptied = patch_group(added, ops({"op": "remove", "path": "members"}, schema=GROUP_SCHEMA))
    assert emptied.members == ()
    replaced = patch_group(
        added,
        ops(
            {"op": "replace", "value": {"id": "g", "displayName": "Sales Team"}},
            schema=GROUP_SCHEMA,
        ),
    )
    assert (replaced.display_name, replaced.members) == ("Sales Team", ("a", "b"))
    with pytest.raises(ScimInvalid, match="no nested groups"):
        group_from_resource({"displayName": "G", "members": [{"value": "x", "type": "Group"}]})


def test_pages_are_one_based_and_bounded() -> None:
    assert page_bounds(None, None) == (0, MAX_RESULTS)
    assert page_bounds(0, 5) == (0, 5)
    assert page_bounds(3, -1) == (2, 0)
    assert page_bounds(1, 10_000) == (0, MAX_RESULTS)
    assert page_bounds(10**30, 1) == (2**31 - 2, 1)  # past every listing, yet a storable offset
