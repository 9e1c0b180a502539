"""HTTP clients for the jitpam REST API: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

Each offers every endpoint of the API as a typed method (declared once, in ``jitpam.sdk.calls``).
The HTTP library is imported when the first call is made, not with the SDK, so a program that
imports the SDK and makes no call (a command's ``--help``) does not pay for it.

Both retry a call only when it never reached the server (no connection): a call that was sent and
then lost its answer may have happened, and sending it again could do it twice. A check that gets
no answer is a denial (``Decision.reason == "server_unreachable"``), never an allow.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from jitpam.sdk import calls
from jitpam.sdk.calls import API, ROLE_PAGE, Call, Listing
from jitpam.sdk.models import UNREACHABLE, Decision, Role, RoleMember, RolePage

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
P = ParamSpec("P")


class ApiError(Exception):
    """The server refused: ``status`` is the HTTP status, ``code`` jitpam's error code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class Unreachable(Exception):
    """The server could not be reached, or its answer was lost."""


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            raise ApiError(
                response.status_code, str(body.get("code", "error")), str(body.get("detail", ""))
            )
        except ValueError:
            raise ApiError(
                response.status_code, "error", response.text[:200] or response.reason_phrase
            ) from None
    if response.status_code == 204 or not response.content:
        return None
    kind = response.headers.get("content-type", "")
    if kind.startswith(("application/json", "application/problem+json")):
        return response.json()
    return response.text


def _params(params: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if v is not None and v is not False}


def _lost(url: str, exc: Exception) -> Unreachable:
    return Unreachable(
        f"the jitpam server at {url} did not answer: {exc}; the call may or may not have "
        "been carried out"
    )


def _refused(url: str, exc: Exception) -> Unreachable:
    return Unreachable(f"cannot reach the jitpam server at {url}: {exc}")


def _denied(url: str, exc: Exception) -> Decision:
    return Decision(False, UNREACHABLE, detail=str(exc) or f"no answer from {url}")


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _whole_role(first: RolePage, tasks: list[str], members: list[RoleMember]) -> Role:
    """The role of ``first`` with every page of its tasks and members followed."""
    raw = {
        **first.raw,
        "tasks": tasks,
        "tasks_next_cursor": None,
        "members": [m.raw for m in members],
        "members_next_cursor": None,
    }
    return Role(first.name, first.type, tuple(tasks), tuple(members), raw=raw)


# Each endpoint becomes a method of both clients: the call is built by its declaration in
# ``calls`` and sent by the client's ``send`` (or followed by its ``each``, for a listing).
def _method(build: Callable[..., Any], run: Callable[..., Any], returns: str) -> Callable[..., Any]:
    """A method that builds the call with ``build`` and hands it to ``run``; its signature (for
    ``help``) is the declaration's, answering ``returns`` (``{}`` stands for the call's type)."""

    def method(self: Any, /, *args: Any, **kwargs: Any) -> Any:
        return run(self, build(*args, **kwargs))

    signature = inspect.signature(build)
    declared = str(signature.return_annotation)  # "Call[User]", "Listing[User]"
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined] # read by inspect
        parameters=[this, *signature.parameters.values()],
        return_annotation=returns.format(declared[declared.find("[") + 1 : -1]),
    )
    method.__name__ = build.__name__
    method.__qualname__ = build.__qualname__
    method.__doc__ = build.__doc__
    return method


def _sent(build: Callable[P, Call[T]]) -> Callable[Concatenate[Client, P], T]:
    return _method(build, lambda client, call: client.send(call), "{}")


def _listed(build: Callable[P, Listing[T]]) -> Callable[Concatenate[Client, P], Iterator[T]]:
    return _method(build, lambda client, listing: client.each(listing), "Iterator[{}]")


def _awaited(
    build: Callable[P, Call[T]],
) -> Callable[Concatenate[AsyncClient, P], Awaitable[T]]:
    return _method(build, lambda client, call: client.send(call), "Awaitable[{}]")


def _async_listed(
    build: Callable[P, Listing[T]],
) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[T]]:
    return _method(build, lambda client, listing: client.each(listing), "AsyncIterator[{}]")


class Client:
    """A blocking client for one server and one bearer token."""

    def __init__(
        self, url: str, token: str | None = None, *, timeout: float = 15.0, retries: int = 2
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.timeout = timeout
        self._headers = _headers(token)
        self._http: httpx.Client | None = None
        self._opening = threading.Lock()  # threads sharing a client share one connection pool

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _connection(self) -> httpx.Client:
        with self._opening:
            if self._http is None:
                import httpx

                self._http = httpx.Client(
                    base_url=self.url, headers=self._headers, timeout=self.timeout
                )
            return self._http

    def _request(
        self, method: str, path: str, *, json: Any, params: dict[str, Any] | None, unbounded: bool
    ) -> Any:
        import httpx

        http = self._connection()
        timeout = httpx.Timeout(self.timeout, read=None) if unbounded else self.timeout
        for attempt in range(self.retries + 1):
            try:
                response = http.request(
                    method, path, json=json, params=_params(params), timeout=timeout
                )
                return _answer(response)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == self.retries:
                    raise _refused(self.url, exc) from None
            except httpx.TransportError as exc:
                raise _lost(self.url, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def send(self, call: Call[T]) -> T:
        """Send one call; its answer, typed. Raises ApiError or Unreachable."""
        body = self._request(
            call.method,
            call.path,
            json=call.json,
            params=dict(call.params),
            unbounded=call.unbounded,
        )
        return call.parse(body)

    def each(self, listing: Listing[T]) -> Iterator[T]:
        """Every item of a listing, following the server's cursors; stops after ``limit``."""
        params = dict(listing.params)
        seen = 0
        while True:
            page = self._request("GET", listing.path, json=None, params=params, unbounded=False)
            for item in page["items"]:
                if listing.limit is not None and seen >= listing.limit:
                    return
                seen += 1
                yield listing.item(item)
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        unbounded: bool = False,
    ) -> Any:
        """Send a call by hand (``path`` under ``/api/v1``); its JSON (or text) body. The typed
        methods are the way to call the API; this is for a server newer than the SDK."""
        return self._request(method, API + path, json=json, params=params, unbounded=unbounded)

    def items(
        self, path: str, params: dict[str, Any] | None = None, *, limit: int | None = None
    ) -> Iterator[Any]:
        """Every item of a listing by hand (``path`` under ``/api/v1``), as JSON."""
        return self.each(
            Listing(item=lambda doc: doc, params=params or {}, limit=limit, path=API + path)
        )

    def check(self, task: str, user: str | None = None) -> Decision:
        """May ``user`` (default: the caller) run ``task`` now? No answer is a denial."""
        try:
            return self.send(calls.check(task, user))
        except Unreachable as exc:
            return _denied(self.url, exc)

    def check_batch(self, checks: list[tuple[str, str | None]]) -> list[Decision]:
        """Up to 1,000 (task, user) checks at one instant; answers in the same order. No answer
        denies them all."""
        try:
            return self.send(calls.check_batch(checks))
        except Unreachable as exc:
            return [_denied(self.url, exc) for _ in checks]

    def role(self, name: str, *, kind: str = "role") -> Role:
        """A role (or role group, ``kind="role_group"``) with all its tasks and members."""
        first = self.send(calls.role_page(name, kind=kind, page_size=ROLE_PAGE))
        tasks, members = list(first.tasks), list(first.members)
        if first.tasks_next_cursor:
            more = calls.catalog_tasks(
                role=first.name, cursor=first.tasks_next_cursor, page_size=ROLE_PAGE
            )
            tasks += [t.name for t in self.each(more)]
        cursor = first.members_next_cursor
        while cursor:
            page = self.send(
                calls.role_page(name, kind=kind, members_cursor=cursor, page_size=ROLE_PAGE)
            )
            members += page.members
            cursor = page.members_next_cursor
        return _whole_role(first, tasks, members)

    login = _sent(calls.login)
    logout = _sent(calls.logout)
    me = _sent(calls.me)
    change_password = _sent(calls.change_password)
    set_password = _sent(calls.set_password)
    create_token = _sent(calls.create_token)
    tokens = _listed(calls.tokens)
    revoke_token = _sent(calls.revoke_token)
    users = _listed(calls.users)
    new_user = _sent(calls.new_user)
    get_user = _sent(calls.get_user)
    set_user = _sent(calls.set_user)
    groups = _listed(calls.groups)
    new_group = _sent(calls.new_group)
    get_group = _sent(calls.get_group)
    remove_group = _sent(calls.remove_group)
    add_group_member = _sent(calls.add_group_member)
    remove_group_member = _sent(calls.remove_group_member)
    roles = _listed(calls.roles)
    role_page = _sent(calls.role_page)
    assign = _sent(calls.assign)
    unassign = _sent(calls.unassign)
    catalog_tasks = _listed(calls.catalog_tasks)
    import_catalog = _sent(calls.import_catalog)
    access_control = _sent(calls.access_control)
    enable_control = _sent(calls.enable_control)
    disable_control = _sent(calls.disable_control)
    set_organization_config = _sent(calls.set_organization_config)
    policies = _listed(calls.policies)
    new_policy = _sent(calls.new_policy)
    get_policy = _sent(calls.get_policy)
    set_policy = _sent(calls.set_policy)
    remove_policy = _sent(calls.remove_policy)
    requests = _listed(calls.requests)
    request_access = _sent(calls.request_access)
    get_request = _sent(calls.get_request)
    approve = _sent(calls.approve)
    deny = _sent(calls.deny)
    cancel = _sent(calls.cancel)
    verify_request = _sent(calls.verify_request)
    authorizations = _listed(calls.authorizations)
    revoke = _sent(calls.revoke)
    audit = _listed(calls.audit)
    export_audit = _sent(calls.export_audit)
    audit_checkpoint = _sent(calls.audit_checkpoint)
    verify_audit = _sent(calls.verify_audit)
    webhooks = _listed(calls.webhooks)
    add_webhook = _sent(calls.add_webhook)
    remove_webhook = _sent(calls.remove_webhook)
    test_webhook = _sent(calls.test_webhook)
    outbox = _listed(calls.outbox)
    retry_message = _sent(calls.retry_message)
    task_definitions = _listed(calls.task_definitions)
    get_task_definition = _sent(calls.get_task_definition)
    run_task = _sent(calls.run_task)
    alive = _sent(calls.alive)
    ready = _sent(calls.ready)
    metrics = _sent(calls.metrics)


class AsyncClient:
    """The same calls for asyncio code."""

    def __init__(
        self, url: str, token: str | None = None, *, timeout: float = 15.0, retries: int = 2
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.timeout = timeout
        self._headers = _headers(token)
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _connection(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                base_url=self.url, headers=self._headers, timeout=self.timeout
            )
        return self._http

    async def _request(
        self, method: str, path: str, *, json: Any, params: dict[str, Any] | None, unbounded: bool
    ) -> Any:
        import httpx

        http = self._connection()
        timeout = httpx.Timeout(self.timeout, read=None) if unbounded else self.timeout
        for attempt in range(self.retries + 1):
            try:
                response = await http.request(
                    method, path, json=json, params=_params(params), timeout=timeout
                )
                return _answer(response)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == self.retries:
                    raise _refused(self.url, exc) from None
            except httpx.TransportError as exc:
                raise _lost(self.url, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def send(self, call: Call[T]) -> T:
        """Send one call; its answer, typed. Raises ApiError or Unreachable."""
        body = await self._request(
            call.method,
            call.path,
            json=call.json,
            params=dict(call.params),
            unbounded=call.unbounded,
        )
        return call.parse(body)

    async def each(self, listing: Listing[T]) -> AsyncIterator[T]:
        """Every item of a listing, following the server's cursors; stops after ``limit``."""
        params = dict(listing.params)
        seen = 0
        while True:
            page = await self._request(
                "GET", listing.path, json=None, params=params, unbounded=False
            )
            for item in page["items"]:
                if listing.limit is not None and seen >= listing.limit:
                    return
                seen += 1
                yield listing.item(item)
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        unbounded: bool = False,
    ) -> Any:
        """Send a call by hand (``path`` under ``/api/v1``); its JSON (or text) body."""
        return await self._request(
            method, API + path, json=json, params=params, unbounded=unbounded
        )

    def items(
        self, path: str, params: dict[str, Any] | None = None, *, limit: int | None = None
    ) -> AsyncIterator[Any]:
        """Every item of a listing by hand (``path`` under ``/api/v1``), as JSON."""
        return self.each(
            Listing(item=lambda doc: doc, params=params or {}, limit=limit, path=API + path)
        )

    async def check(self, task: str, user: str | None = None) -> Decision:
        """May ``user`` (default: the caller) run ``task`` now? No answer is a denial."""
        try:
            return await self.send(calls.check(task, user))
        except Unreachable as exc:
            return _denied(self.url, exc)

    async def check_batch(self, checks: list[tuple[str, str | None]]) -> list[Decision]:
        """Up to 1,000 (task, user) checks at one instant; answers in the same order. No answer
        denies them all."""
        try:
            return await self.send(calls.check_batch(checks))
        except Unreachable as exc:
            return [_denied(self.url, exc) for _ in checks]

    async def role(self, name: str, *, kind: str = "role") -> Role:
        """A role (or role group, ``kind="role_group"``) with all its tasks and members."""
        first = await self.send(calls.role_page(name, kind=kind, page_size=ROLE_PAGE))
        tasks, members = list(first.tasks), list(first.members)
        if first.tasks_next_cursor:
            more = calls.catalog_tasks(
                role=first.name, cursor=first.tasks_next_cursor, page_size=ROLE_PAGE
            )
            tasks += [t.name async for t in self.each(more)]
        cursor = first.members_next_cursor
        while cursor:
            page = await self.send(
                calls.role_page(name, kind=kind, members_cursor=cursor, page_size=ROLE_PAGE)
            )
            members += page.members
            cursor = page.members_next_cursor
        return _whole_role(first, tasks, members)

    login = _awaited(calls.login)
    logout = _awaited(calls.logout)
    me = _awaited(calls.me)
    change_password = _awaited(calls.change_password)
    set_password = _awaited(calls.set_password)
    create_token = _awaited(calls.create_token)
    tokens = _async_listed(calls.tokens)
    revoke_token = _awaited(calls.revoke_token)
    users = _async_listed(calls.users)
    new_user = _awaited(calls.new_user)
    get_user = _awaited(calls.get_user)
    set_user = _awaited(calls.set_user)
    groups = _async_listed(calls.groups)
    new_group = _awaited(calls.new_group)
    get_group = _awaited(calls.get_group)
    remove_group = _awaited(calls.remove_group)
    add_group_member = _awaited(calls.add_group_member)
    remove_group_member = _awaited(calls.remove_group_member)
    roles = _async_listed(calls.roles)
    role_page = _awaited(calls.role_page)
    assign = _awaited(calls.assign)
    unassign = _awaited(calls.unassign)
    catalog_tasks = _async_listed(calls.catalog_tasks)
    import_catalog = _awaited(calls.import_catalog)
    access_control = _awaited(calls.access_control)
    enable_control = _awaited(calls.enable_control)
    disable_control = _awaited(calls.disable_control)
    set_organization_config = _awaited(calls.set_organization_config)
    policies = _async_listed(calls.policies)
    new_policy = _awaited(calls.new_policy)
    get_policy = _awaited(calls.get_policy)
    set_policy = _awaited(calls.set_policy)
    remove_policy = _awaited(calls.remove_policy)
    requests = _async_listed(calls.requests)
    request_access = _awaited(calls.request_access)
    get_request = _awaited(calls.get_request)
    approve = _awaited(calls.approve)
    deny = _awaited(calls.deny)
    cancel = _awaited(calls.cancel)
    verify_request = _awaited(calls.verify_request)
    authorizations = _async_listed(calls.authorizations)
    revoke = _awaited(calls.revoke)
    audit = _async_listed(calls.audit)
    export_audit = _awaited(calls.export_audit)
    audit_checkpoint = _awaited(calls.audit_checkpoint)
    verify_audit = _awaited(calls.verify_audit)
    webhooks = _async_listed(calls.webhooks)
    add_webhook = _awaited(calls.add_webhook)
    remove_webhook = _awaited(calls.remove_webhook)
    test_webhook = _awaited(calls.test_webhook)
    outbox = _async_listed(calls.outbox)
    retry_message = _awaited(calls.retry_message)
    task_definitions = _async_listed(calls.task_definitions)
    get_task_definition = _awaited(calls.get_task_definition)
    run_task = _awaited(calls.run_task)
    alive = _awaited(calls.alive)
    ready = _awaited(calls.ready)
    metrics = _awaited(calls.metrics)
