"""The OIDC settings: the group map and the opted-in approver groups from a TOML file and from
the environment, the refusals of settings that do not hang together, and when the server
fetches the issuer's discovery document."""

from __future__ import annotations

from pathlib import Path

import pytest

from jitpam.adapters.oidc import _safe_endpoint
from jitpam.domain.group_claims import ClaimedGroup, GroupClaimMap
from jitpam.settings import SettingsError, load_settings

BASE = {"JITPAM_OIDC_ISSUER": "https://login.example", "JITPAM_OIDC_AUDIENCE": "jitpam"}


def test_the_group_map_from_a_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "jitpam.toml"
    config.write_text(
        'oidc_issuer = "https://login.example"\n'
        'oidc_audience = "jitpam"\n'
        'oidc_groups_claim = "groups"\n'
        "[oidc_group_map]\n"
        '"contoso:Helpdesk" = "sg-helpdesk"\n'
        '"contoso:PAM Approvers" = "0b1c"\n'
        '"fabrikam:Helpdesk" = "sg-helpdesk"\n',
        encoding="utf-8",
    )
    s = load_settings(str(config), env={})
    assert s.oidc_group_map == (
        ("contoso:Helpdesk", "sg-helpdesk"),
        ("contoso:PAM Approvers", "0b1c"),
        ("fabrikam:Helpdesk", "sg-helpdesk"),
    )
    mapping = GroupClaimMap.of(s.oidc_group_map)
    assert mapping.of_org("Contoso") == [
        ClaimedGroup("contoso", "Helpdesk", "sg-helpdesk"),
        ClaimedGroup("contoso", "PAM Approvers", "0b1c"),
    ]
    assert s.oidc_discovers  # no oidc_jwks_url: the endpoints come from the document


def test_the_group_map_from_the_environment() -> None:
    env = {
        **BASE,
        "JITPAM_OIDC_GROUPS_CLAIM": "roles",
        "JITPAM_OIDC_GROUP_MAP": '{"contoso:Helpdesk": "sg,with=odd chars"}',
    }
    s = load_settings(env=env)
    assert s.oidc_group_map == (("contoso:Helpdesk", "sg,with=odd chars"),)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"JITPAM_OIDC_GROUP_MAP": '{"Helpdesk": "sg"}'}, 'as "<organization>:<group>"'),
        ({"JITPAM_OIDC_GROUP_MAP": "not json"}, "must be a JSON object"),
        ({"JITPAM_OIDC_GROUP_MAP": '{"contoso:Helpdesk": 7}'}, "must map to a claim value"),
        (
            {"JITPAM_OIDC_GROUP_MAP": '{"contoso:Helpdesk": "a", "Contoso:helpdesk": "b"}'},
            "twice",
        ),
        ({"JITPAM_OIDC_GROUP_MAP": '{"contoso:Helpdesk": "sg"}'}, "needs oidc_groups_claim"),
    ],
)
def test_group_settings_that_do_not_hang_together_are_refused(
    extra: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings(env={**BASE, **extra})


def test_the_issuer_alone_is_not_enough_and_explicit_endpoints_skip_discovery() -> None:
    with pytest.raises(SettingsError, match="OIDC needs oidc_issuer and oidc_audience"):
        load_settings(env={"JITPAM_OIDC_ISSUER": "https://login.example"})
    explicit = load_settings(env={**BASE, "JITPAM_OIDC_JWKS_URL": "https://login.example/k"})
    assert not explicit.oidc_discovers
    chosen = load_settings(
        env={
            **BASE,
            "JITPAM_OIDC_JWKS_URL": "https://login.example/k",
            "JITPAM_OIDC_DISCOVERY_URL": "https://login.example/tenant/.well-known/x",
        }
    )
    assert chosen.oidc_discovers
    with pytest.raises(SettingsError, match="needs oidc_authorization_url and oidc_token_url"):
        load_settings(
            env={
                **BASE,
                "JITPAM_OIDC_JWKS_URL": "https://login.example/k",
                "JITPAM_OIDC_TOKEN_URL": "https://login.example/token",
            }
        )


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://login.example/token", True),
        ("http://127.0.0.1:8080/token", True),
        ("http://localhost/token", True),
        ("http://login.example/token", False),
        ("ftp://login.example/token", False),
        ("https:///token", False),
    ],
)
def test_endpoints_from_a_discovery_document_must_not_cross_a_network_in_the_clear(
    url: str, safe: bool
) -> None:
    assert _safe_endpoint(url) is safe
