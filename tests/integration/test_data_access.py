"""Data access requests through the services: installing an application files its requests in
the installer's name, approvers decide them as any request, and the application is allowed a
data scope on a resource only while an authorization covering that resource is active.

The rules run on the in-memory unit of work; one story runs on the databases too.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from jitpam.catalogs import shipped_catalog
from jitpam.domain.audit import AuditRecord, Outcome
from jitpam.domain.check import Reason
from jitpam.domain.errors import (
    InvalidInput,
    NoPolicy,
    NotFound,
    RequesterNotEligible,
    SelfApprovalNotAllowed,
    SeparationOfDuties,
)
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import applications, auth, directory, organizations, requests
from jitpam.services.applications import Installed
from jitpam.services.context import ServiceContext
from tests.integration.world import Person, World

MAIL_READ = "Office365\\Mail.Read"
INSTALLER_ROLE = "jitpam\\Application Installer"
REASON = "Sales insights need the sales team's mail"


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    return memory_ctx


@dataclass(frozen=True)
class Scene:
    world: World
    dev: Person  # installs applications
    dana: Person  # approves data access
    sam: Person  # in Sales

    def install(
        self, name: str = "Contoso Insights", scopes: tuple[str, ...] = ("Mail.Read",), **kw: object
    ) -> Installed:
        options: dict[str, object] = {
            "resources": ["group:Sales", f"mailbox:ceo@{self.world.domain}"],
            "reason": REASON,
            "duration_hours": 8,
            **kw,
        }
        return applications.install_application(
            self.world.ctx,
            caller=self.dev.caller,
            name=name,
            service="Office365",
            scopes=list(scopes),
            **options,  # type: ignore[arg-type]
        )

    def check(self, app: str, resource: str, scope: str = "Mail.Read") -> Reason:
        checker = self.world.admin  # Global Administrator holds Access Checker
        return applications.check_data_access(
            self.world.ctx,
            caller=checker.caller,
            user=app,
            service="Office365",
            scope=scope,
            resource=resource,
        ).reason


def make_scene(world: World) -> Scene:
    ctx, admin = world.ctx, world.admin
    organizations.import_catalog(
        ctx, caller=admin.caller, text=shipped_catalog("office365"), source="office365.toml"
    )
    approver = world.user("approver")
    world.group("Approvers", approver)
    organizations.enable_access_control(ctx, caller=admin.caller, admin_group="Approvers")
    dana = world.user("dana")
    world.group("DataApprovers", dana, approver)
    world.policy(MAIL_READ, type=PolicyType.DATA_ACCESS, approver_group="DataApprovers")
    sam = world.user("sam")
    world.group("Sales", sam)
    dev = world.user("dev", roles=(INSTALLER_ROLE,))
    return Scene(world, dev, dana, sam)


@pytest.fixture
def scene(world: World) -> Scene:
    return make_scene(world)


def records(world: World, operation: str) -> list[AuditRecord]:
    with world.ctx.uow() as uow:
        return [r for r in uow.audit.records(world.org.id) if r.operation == operation]


def approve(scene: Scene, who: Person, request_id: object) -> RequestStatus:
    return requests.approve_request(
        scene.world.ctx, caller=who.caller, request_id=request_id, comment="ok"
    ).status  # type: ignore[arg-type]


def story(scene: Scene) -> None:
    installed = scene.install()
    app = installed.application
    assert app.upn == f"contoso-insights@{scene.world.domain}"
    (filed,) = installed.requests
    request = filed.request
    assert (filed.status, request.requester_upn, request.grantee_upn) == (
        RequestStatus.PENDING,
        scene.dev.upn,
        app.upn,
    )
    assert request.type.label == "Data Access Request"
    assert request.resources == ("group:Sales", f"mailbox:ceo@{scene.world.domain}")
    ceo = f"mailbox:ceo@{scene.world.domain}"
    assert scene.check(app.upn, ceo) is Reason.AUTHORIZATION_REQUIRED  # pending grants nothing

    with pytest.raises(SelfApprovalNotAllowed):  # the installer is the requester of record
        approve(scene, scene.dev, request.id)
    assert approve(scene, scene.dana, request.id) is RequestStatus.APPROVED
    assert scene.check(app.upn, ceo) is Reason.AUTHORIZED
    assert scene.check(app.upn, f"mailbox:{scene.sam.upn}") is Reason.AUTHORIZED  # in Sales
    assert scene.check(app.upn, f"user:{scene.sam.upn}") is Reason.AUTHORIZED
    assert scene.check(app.upn, f"mailbox:{scene.dana.upn}") is Reason.RESOURCE_NOT_COVERED
    assert scene.check(app.upn, ceo, scope="Mail.Send") is Reason.AUTHORIZATION_REQUIRED
    assert scene.check(app.upn, ceo, scope="Mail.Everything") is Reason.UNKNOWN_TASK
    assert scene.check(scene.dev.upn, ceo) is Reason.AUTHORIZATION_REQUIRED  # not the installer's

    votes = records(scene.world, "Approve-ElevatedAccessRequest")
    (approved,) = [r for r in votes if r.target == str(request.id) and r.outcome is Outcome.SUCCESS]
    assert approved.details["requester"] == app.upn  # whose grants changed
    (install,) = records(scene.world, "Install-Application")
    assert (install.actor_name, install.target) == (scene.dev.upn, app.upn)

    requests.revoke_authorization(
        scene.world.ctx, caller=scene.dev.caller, request_id=request.id, comment="uninstalled"
    )
    assert scene.check(app.upn, ceo) is Reason.AUTHORIZATION_REQUIRED
    checks = records(scene.world, "Test-DataAccess")
    assert [c.outcome for c in checks].count(Outcome.SUCCESS) == 3


def test_an_application_is_allowed_its_data_only_while_an_approval_covers_it(scene: Scene) -> None:
    story(scene)


def test_the_story_on_the_databases(db_world: World) -> None:
    story(make_scene(db_world))


def test_whoever_set_up_the_applications_credentials_does_not_vote(scene: Scene) -> None:
    installed = scene.install()
    app = installed.application
    (filed,) = installed.requests
    auth.create_token(scene.world.ctx, caller=scene.world.admin.caller, user=app.upn)
    directory.change_membership(
        scene.world.ctx,
        caller=scene.world.admin.caller,
        group="DataApprovers",
        upn=scene.world.admin.upn,
        add=True,
    )
    with pytest.raises(SeparationOfDuties, match="credentials"):
        approve(scene, scene.world.admin, filed.request.id)
    assert approve(scene, scene.dana, filed.request.id) is RequestStatus.APPROVED


def test_installing_is_all_or_nothing(scene: Scene) -> None:
    with pytest.raises(NoPolicy, match=r"Mail\.Send"):
        scene.install(scopes=("Mail.Read", "Mail.Send"))
    with pytest.raises(NotFound):
        directory.get_user(
            scene.world.ctx,
            caller=scene.world.admin.caller,
            upn=f"contoso-insights@{scene.world.domain}",
        )
    with pytest.raises(InvalidInput, match="kind:name"):
        scene.install(resources=["everything"])
    plain = scene.world.user("plain")
    with pytest.raises(Exception, match="Install-Application"):
        applications.install_application(
            scene.world.ctx,
            caller=plain.caller,
            name="Rogue",
            service="Office365",
            scopes=["Mail.Read"],
            resources=["group:Sales"],
            reason=REASON,
        )


def test_policies_cover_data_scopes_as_they_cover_tasks(scene: Scene) -> None:
    world = scene.world
    world.policy(
        "Office365\\Calendars.Read",
        type=PolicyType.DATA_ACCESS,
        approval=ApprovalType.AUTO,
        approver_group="DataApprovers",
        eligible_users=[scene.dana.upn],
    )
    with pytest.raises(RequesterNotEligible):
        scene.install(scopes=("Calendars.Read",))
    world.policy(
        "Office365\\Contacts.Read",
        type=PolicyType.DATA_ACCESS,
        approval=ApprovalType.AUTO,
        approver_group="DataApprovers",
    )
    (auto,) = scene.install(name="Contacts Sync", scopes=("Contacts.Read",)).requests
    assert auto.status is RequestStatus.APPROVED
    assert (
        scene.check(auto.request.grantee_upn, f"mailbox:ceo@{world.domain}", scope="Contacts.Read")
        is Reason.AUTHORIZED
    )


def test_nobody_asks_for_data_access_for_themself(scene: Scene) -> None:
    with pytest.raises(InvalidInput, match="installed"):
        requests.new_request(
            scene.world.ctx,
            caller=scene.dev.caller,
            type=PolicyType.DATA_ACCESS,
            target=MAIL_READ,
            reason=REASON,
        )


def test_data_access_requests_are_listed_by_their_kind(scene: Scene) -> None:
    scene.install()
    listed = requests.list_requests(
        scene.world.ctx, caller=scene.world.admin.caller, types=[PolicyType.DATA_ACCESS]
    ).items
    assert [v.request.type for v in listed] == [PolicyType.DATA_ACCESS]
    assert (
        requests.list_requests(
            scene.world.ctx, caller=scene.world.admin.caller, types=[PolicyType.TASK]
        ).items
        == []
    )


def test_an_organization_approves_access_to_its_own_data_only(scene: Scene) -> None:
    other = World(scene.world.ctx, scene.world.clock)
    for foreign in (f"mailbox:ceo@{other.domain}", "group:NoSuchGroup"):
        with pytest.raises(InvalidInput, match="organization"):
            scene.install(resources=[foreign])
    (filed,) = scene.install().requests
    approve(scene, scene.dana, filed.request.id)
    app = filed.request.grantee_upn
    assert scene.check(app, f"mailbox:ceo@{other.domain}") is Reason.RESOURCE_NOT_COVERED


def test_who_approved_an_application_does_not_take_its_credentials_after(scene: Scene) -> None:
    """The steward rule's other half: a vote first, the credentials after, is refused too."""
    installed = scene.install()
    (filed,) = installed.requests
    eve = scene.world.user("eve", roles=("jitpam\\Role Management",))  # may mint app tokens
    directory.change_membership(
        scene.world.ctx,
        caller=scene.world.admin.caller,
        group="DataApprovers",
        upn=eve.upn,
        add=True,
    )
    approve(scene, eve, filed.request.id)
    app = installed.application.upn
    with pytest.raises(SeparationOfDuties, match="approved"):
        auth.create_token(scene.world.ctx, caller=eve.caller, user=app)
    requests.revoke_authorization(
        scene.world.ctx, caller=eve.caller, request_id=filed.request.id, comment="done"
    )
    auth.create_token(scene.world.ctx, caller=eve.caller, user=app)  # nothing open any more
