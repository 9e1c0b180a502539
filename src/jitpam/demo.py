"""The demo organization ``contoso``: the seeds' cast, ready to sign in to.

Created once (``jitpam serve --demo``) and kept; its passwords are printed because they are the
demo's, not secrets: never run a demo server where real access is managed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from jitpam.domain.directory import UserKind
from jitpam.domain.errors import NotFound
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.services import auth, directory, organizations, policies
from jitpam.services.context import Caller, ServiceContext

ORG = "contoso"
PASSWORD = "contoso-demo-2026"  # noqa: S105 - the demo's published password
# Task definitions the demo server runs (unless the settings name a task directory).
TASKS_DIR = Path(__file__).parent / "demo_tasks"


@dataclass(frozen=True)
class DemoUser:
    upn: str
    role: str


USERS = (
    DemoUser("admin@contoso.com", "administrator (jitpam\\Global Administrator)"),
    DemoUser(
        "alice@contoso.com",
        "requester (holds Exchange\\Move Mailboxes and jitpam\\Application Installer; in helpdesk)",
    ),
    DemoUser("bob@contoso.com", "approver (in pamapprovers)"),
    DemoUser("carol@contoso.com", "approver (in pamapprovers)"),
    DemoUser("sys@contoso.com", "system account, exempt from control"),
)


def ensure_demo(ctx: ServiceContext) -> bool:
    """Create the demo organization unless it exists; returns True when it was created now."""
    try:
        organizations.find_organization(ctx, name=ORG)
        return False
    except NotFound:
        pass
    org, admin_user = organizations.create_organization(
        ctx,
        name=ORG,
        admin_upn="admin@contoso.com",
        admin_display_name="Contoso Admin",
        catalogs=("exchange", "office365"),
    )
    admin = Caller(org.id, admin_user.id)
    auth.set_password(ctx, caller=admin, upn=admin_user.upn, password=PASSWORD)
    people = {
        "alice@contoso.com": ("Alice (Helpdesk)", UserKind.PERSON),
        "bob@contoso.com": ("Bob (PAM approver)", UserKind.PERSON),
        "carol@contoso.com": ("Carol (PAM approver)", UserKind.PERSON),
        "sys@contoso.com": ("Mailbox migration service", UserKind.SERVICE),
    }
    for upn, (name, kind) in people.items():
        directory.add_user(ctx, caller=admin, upn=upn, display_name=name, kind=kind)
        auth.set_password(ctx, caller=admin, upn=upn, password=PASSWORD)
    directory.add_group(ctx, caller=admin, name="pamapprovers", email="pamapprovers@contoso.com")
    directory.add_group(ctx, caller=admin, name="helpdesk", email="helpdesk@contoso.com")
    for group, upn in (
        ("pamapprovers", "bob@contoso.com"),
        ("pamapprovers", "carol@contoso.com"),
        ("helpdesk", "alice@contoso.com"),
    ):
        directory.change_membership(ctx, caller=admin, group=group, upn=upn, add=True)
    for upn in ("alice@contoso.com", "sys@contoso.com"):
        directory.change_assignment(
            ctx, caller=admin, role="Exchange\\Move Mailboxes", user=upn, add=True
        )
    # Alice installs applications (jitpam app install); the administrator, who set up the
    # approvers, may not (separation of duties: its requests would have no vote that counts).
    directory.change_assignment(
        ctx, caller=admin, role="jitpam\\Application Installer", user="alice@contoso.com", add=True
    )
    organizations.enable_access_control(ctx, caller=admin, admin_group="pamapprovers")
    # The admin created sys and set its password: their designation would not count (separation
    # of duties), so the demo's set-up designates it as the installation.
    organizations.add_system_accounts(ctx, org_name=ORG, upns=["sys@contoso.com"])
    policies.new_policy(
        ctx,
        caller=admin,
        type=PolicyType.TASK,
        target="Exchange\\New-MoveRequest",
        approval_type=ApprovalType.MANUAL,
        approver_group="pamapprovers",
    )
    policies.new_policy(
        ctx,
        caller=admin,
        type=PolicyType.ROLE,
        target="Exchange\\Mailbox Search",
        approval_type=ApprovalType.AUTO,
        approver_group="pamapprovers",
        eligible_groups=["helpdesk"],
    )
    # Applications' data access (jitpam app install): reading mail needs an approver's yes.
    policies.new_policy(
        ctx,
        caller=admin,
        type=PolicyType.DATA_ACCESS,
        target="Office365\\Mail.Read",
        approval_type=ApprovalType.MANUAL,
        approver_group="pamapprovers",
    )
    return True


def ensure_demo_secrets(secrets_dir: Path) -> None:
    """The pretend Exchange credential the demo's task runs with: random, made once, mode 600."""
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets_dir / "exchange-token"
    if not token.exists():
        token.touch(mode=0o600)
        token.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
