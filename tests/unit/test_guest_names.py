"""A guest's name: their own address in Entra's form under a domain of the inviting
organization (``gus@fabrikam.com`` in contoso.com is ``gus_fabrikam.com#EXT#@contoso.com``), and
back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitpam.domain.directory import (
    MAX_TEXT,
    check_domain,
    guest_upn,
    home_address,
    normalize_upn,
    upn_domain,
)
from jitpam.domain.errors import InvalidInput

LOCAL = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+'-",
    min_size=1,
    max_size=20,
)
LABEL = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
    min_size=1,
    max_size=12,
)
DOMAIN = st.lists(LABEL, min_size=2, max_size=4).map(".".join)


def test_a_home_address_becomes_entras_form_under_the_organizations_domain() -> None:
    assert guest_upn("gus@fabrikam.com", "contoso.com") == "gus_fabrikam.com#EXT#@contoso.com"
    assert guest_upn(" Gus.Smith@Fabrikam.COM ", "Contoso.com") == (
        "gus.smith_fabrikam.com#EXT#@contoso.com"
    )
    # "_" may be in an address too; a domain never holds one, so the last "_" splits them.
    assert guest_upn("gus_s@fabrikam.com", "contoso.com") == "gus_s_fabrikam.com#EXT#@contoso.com"
    assert home_address("gus_s_fabrikam.com#EXT#@contoso.com") == "gus_s@fabrikam.com"


def test_the_guest_form_is_a_upn_whose_mark_keeps_entras_case() -> None:
    for typed in (
        "gus_fabrikam.com#EXT#@contoso.com",
        "GUS_Fabrikam.com#ext#@CONTOSO.com",
        "gus_fabrikam.com#Ext#@contoso.com",
    ):
        assert normalize_upn(typed) == "gus_fabrikam.com#EXT#@contoso.com"
    assert upn_domain("gus_fabrikam.com#EXT#@contoso.com") == "contoso.com"


@pytest.mark.parametrize(
    "bad",
    [
        "gus#EXT#@contoso.com",  # no home domain before the mark
        "gus_fabrikam#EXT#@contoso.com",  # a home domain without a dot
        "gus_fabrikam.com#EXT@contoso.com",  # a broken mark
        "gus_fabrikam.com#EXT##EXT#@contoso.com",
        "gus#x@contoso.com",
        "#EXT#@contoso.com",
    ],
)
def test_a_hash_is_only_accepted_as_the_guest_mark(bad: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_upn(bad)


def test_home_address_reads_the_guest_form_and_nothing_else() -> None:
    assert home_address("gus_fabrikam.com#EXT#@contoso.com") == "gus@fabrikam.com"
    assert home_address("GUS_fabrikam.com#ext#@contoso.com") == "gus@fabrikam.com"
    assert home_address("gus@fabrikam.com") is None
    assert home_address("gus_fabrikam.com@contoso.com") is None
    assert home_address("") is None


def test_a_guest_name_is_no_home_address_and_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput, match="guest's name"):
        guest_upn("gus_fabrikam.com#EXT#@contoso.com", "northwind.com")
    with pytest.raises(InvalidInput):
        guest_upn("not an address", "contoso.com")
    with pytest.raises(InvalidInput):
        guest_upn("gus@fabrikam.com", "not a domain")
    with pytest.raises(InvalidInput):  # the stored form would not fit
        guest_upn(f"{'g' * 150}@{'f' * 60}.com", f"{'c' * 60}.com")


@given(local=LOCAL, home=DOMAIN, domain=DOMAIN)
def test_home_address_and_guest_name_round_trip(local: str, home: str, domain: str) -> None:
    address = f"{local}@{home}"
    try:
        name = guest_upn(address, domain)
    except InvalidInput:
        assert len(f"{local}_{home}#EXT#@{domain}") > MAX_TEXT
        return
    assert normalize_upn(name) == name  # the stored form is its own normal form
    assert home_address(name) == normalize_upn(address)
    assert upn_domain(name) == check_domain(domain)
    assert guest_upn(home_address(name) or "", domain) == name
