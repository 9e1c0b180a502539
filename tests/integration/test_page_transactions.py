"""How many transactions a page and an API call cost: a use case answers with the names it shows,
read in its own transaction, so nothing goes back to the services for them afterwards.

The server application runs on units of work that count themselves; the request page, the
busiest page, opens at most two (who views it, with what they may do; then the request with its
names, its buttons and its signature), and the API's reads one besides authenticating."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import Engine

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.webhooks import OutboundUrls
from jitpam.bootstrap import Runtime, build_context
from jitpam.domain.policy import PolicyType
from jitpam.services import auth, organizations, requests
from jitpam.services.ports import UnitOfWork, UnitOfWorkFactory
from jitpam.settings import Settings
from jitpam.web.app import create_server
from tests.integration.conftest import START
from tests.integration.test_committed_changes_answer_success import _serving
from tests.integration.world import Person, World

MOVE = "Exchange\\New-MoveRequest"


class Counted:
    """Unit-of-work factories that count the transactions begun through them."""

    def __init__(self) -> None:
        self.begun = 0

    def wrap(self, real: UnitOfWorkFactory) -> UnitOfWorkFactory:
        def new() -> UnitOfWork:
            return _Unit(real(), self)  # type: ignore[return-value]

        return new


class _Unit:
    def __init__(self, inner: UnitOfWork, counter: Counted) -> None:
        self._inner, self._counter = inner, counter

    def __enter__(self) -> _Unit:
        self._counter.begun += 1
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class Scene:
    client: httpx.Client
    counted: Counted
    world: World
    ann: Person  # approver (Approvers is the default approver group)
    rita: Person  # requester
    request_id: UUID

    def secret(self, who: Person) -> str:
        return auth.create_token(self.world.ctx, caller=who.caller).secret

    def transactions(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """The transactions ``path`` began, and its response."""
        self.counted.begun = 0
        response = self.client.request(method, path, follow_redirects=False, **kwargs)
        return self.counted.begun, response


@pytest.fixture(scope="module")
def served(database_url: str, engine: Engine) -> Iterator[tuple[Runtime, Counted, httpx.Client]]:
    del engine  # migrated
    settings = Settings(argon2_time_cost=1, argon2_memory_kib=8)
    plain, own_engine = build_context(
        database_url=database_url, migrate=False, clock=FixedClock(START), settings=settings
    )
    counted = Counted()
    runtime = Runtime(
        settings=settings,
        ctx=replace(plain, uow=counted.wrap(plain.uow), read=counted.wrap(plain.reader)),
        engine=own_engine,
        oidc=None,
        urls=OutboundUrls(allow_private=False),
    )
    plain_runtime = replace(runtime, ctx=plain)
    try:
        with _serving(create_server(runtime)) as url, httpx.Client(base_url=url) as client:
            yield plain_runtime, counted, client
    finally:
        own_engine.dispose()


@pytest.fixture
def scene(served: tuple[Runtime, Counted, httpx.Client]) -> Scene:
    runtime, counted, client = served
    clock = runtime.ctx.clock
    assert isinstance(clock, FixedClock)
    world = World(runtime.ctx, clock)
    ann = world.user("ann")
    world.group("Approvers", ann)
    rita = world.user("rita", roles=("Exchange\\Move Mailboxes",))
    organizations.enable_access_control(
        runtime.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    world.policy(MOVE, eligible_users=[rita.upn])
    asked = requests.new_request(
        runtime.ctx, caller=rita.caller, type=PolicyType.TASK, target=MOVE, reason="stuck"
    )
    client.cookies.clear()
    return Scene(client, counted, world, ann, rita, asked.request.id)


@pytest.mark.parametrize("viewer", ["approver", "requester"])
def test_the_request_page_opens_at_most_two_transactions(scene: Scene, viewer: str) -> None:
    who = scene.ann if viewer == "approver" else scene.rita
    scene.client.cookies.set("jitpam_session", scene.secret(who))
    begun, page = scene.transactions("GET", f"/requests/{scene.request_id}")
    assert page.status_code == 200, page.text
    assert scene.rita.upn in page.text  # names shown: the requester's UPN
    assert (">Approve</button>" in page.text) is (viewer == "approver")
    assert begun <= 2, f"the request page began {begun} transactions"


def test_a_request_approved_shows_its_approver_by_name_in_the_same_two(scene: Scene) -> None:
    requests.approve_request(scene.world.ctx, caller=scene.ann.caller, request_id=scene.request_id)
    scene.client.cookies.set("jitpam_session", scene.secret(scene.rita))
    begun, page = scene.transactions("GET", f"/requests/{scene.request_id}")
    assert page.status_code == 200, page.text
    assert scene.ann.upn in page.text
    assert begun <= 2, f"the request page began {begun} transactions"


@pytest.mark.parametrize(
    "path", ["/me", "/tokens?all=true", "/groups", "/groups/Approvers", "/requests?mine=true"]
)
def test_an_api_read_is_one_transaction_besides_signing_in(scene: Scene, path: str) -> None:
    headers = {"Authorization": f"Bearer {scene.secret(scene.world.admin)}"}
    begun, response = scene.transactions("GET", "/api/v1" + path, headers=headers)
    assert response.status_code == 200, response.text
    assert begun == 2, f"GET {path} began {begun} transactions"


def test_listings_name_users_in_their_own_transaction(scene: Scene) -> None:
    headers = {"Authorization": f"Bearer {scene.secret(scene.world.admin)}"}
    groups = scene.client.get("/api/v1/groups", headers=headers).json()["items"]
    assert {"name": "Approvers", "members": [scene.ann.upn]}.items() <= {
        k: v for g in groups if g["name"] == "Approvers" for k, v in g.items()
    }.items()
    tokens = scene.client.get("/api/v1/tokens?all=true", headers=headers).json()["items"]
    mine = [t for t in tokens if t["user"] == scene.world.admin.upn]
    assert mine
    assert all(t["created_by"] == scene.world.admin.upn for t in mine)


def test_the_request_page_says_what_the_three_reads_it_replaces_say(scene: Scene) -> None:
    ctx = scene.world.ctx
    for who in (scene.ann, scene.rita, scene.world.admin):
        shown = requests.request_page(ctx, caller=who.caller, request_id=scene.request_id)
        assert shown.view == requests.get_request(
            ctx, caller=who.caller, request_id=scene.request_id
        )
        assert shown.actions == requests.request_actions(
            ctx, caller=who.caller, request_id=scene.request_id
        )
        assert shown.signature_valid is requests.verify_request(
            ctx, caller=who.caller, request_id=scene.request_id
        )
