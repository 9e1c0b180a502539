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
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar, overload

from jitpam.sdk import calls
from jitpam.sdk.calls import API, ROLE_PAGE, Call, Listing
from jitpam.sdk.models import UNREACHABLE, CatalogEntry, Decision, Role, RolePage

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


_Step = Call[Any] | Listing[Any]
"""What a client is asked to carry out, in a conversation of several calls: a call (answered
with its answer) or a listing (answered with the list of all its items)."""


class _Conversation(Generic[T]):
    """Steps carried out one by one by a client: ``next`` takes the last step's answer and gives
    the next step, or None at the end, when ``result`` is what they ended with."""

    result: T

    def __init__(self, steps: Generator[_Step, Any, T]) -> None:
        self.steps = steps

    def next(self, answer: Any) -> _Step | None:
        try:
            return self.steps.send(answer)
        except StopIteration as end:
            self.result = end.value
            return None


def _whole_role(name: str, kind: str) -> Generator[_Step, Any, Role]:
    """A role with every page of its tasks and members followed, as steps for either client."""
    first: RolePage = yield calls.role_page(name, kind=kind, page_size=ROLE_PAGE)
    tasks, members = list(first.tasks), list(first.members)
    if first.tasks_next_cursor:
        more = calls.catalog_tasks(
            role=first.name, cursor=first.tasks_next_cursor, page_size=ROLE_PAGE
        )
        entries: list[CatalogEntry] = yield more
        tasks += [t.name for t in entries]
    cursor = first.members_next_cursor
    while cursor:
        page: RolePage = yield calls.role_page(
            name, kind=kind, members_cursor=cursor, page_size=ROLE_PAGE
        )
        members += page.members
        cursor = page.members_next_cursor
    raw = {
        **first.raw,
        "tasks": tasks,
        "tasks_next_cursor": None,
        "members": [m.raw for m in members],
        "members_next_cursor": None,
    }
    return Role(first.name, first.type, tuple(tasks), tuple(members), raw=raw)


# Each endpoint becomes a method of both clients, declared once in ``_Operations``: the call is
# built by its declaration in ``calls`` and sent by the client's ``send`` (or followed by its
# ``each``, for a listing); on an ``AsyncClient`` the method is awaited (or iterated with
# ``async for``). ``__get__``'s overloads give mypy each client's typed method.
class _Operation(Generic[P, T]):
    """An endpoint as a method of ``Client`` and ``AsyncClient``; ``run`` is ``"send"`` or
    ``"each"``, the client's method that carries the call out."""

    run = "send"

    def __init__(self, build: Callable[P, Any]) -> None:
        self.build = build
        self.methods: dict[type[Any], Callable[..., Any]] = {}

    def method(self, owner: type[Any]) -> Callable[..., Any]:
        """The method on ``owner``; its signature (for ``help``) is the declaration's, answering
        as ``owner`` does (``owner.answers``: "{}" stands for the call's type)."""
        if owner not in self.methods:
            run, build = self.run, self.build

            def method(client: Any, /, *args: Any, **kwargs: Any) -> Any:
                return getattr(client, run)(build(*args, **kwargs))

            signature = inspect.signature(build)
            declared = str(signature.return_annotation)  # "Call[User]", "Listing[User]"
            this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
            answers = owner.answers[run].format(declared[declared.find("[") + 1 : -1])
            method.__signature__ = signature.replace(  # type: ignore[attr-defined] # for inspect
                parameters=[this, *signature.parameters.values()], return_annotation=answers
            )
            method.__name__ = build.__name__
            method.__qualname__ = build.__qualname__
            method.__doc__ = build.__doc__
            self.methods[owner] = method
        return self.methods[owner]

    def bound(self, client: object | None, owner: type[Any]) -> Any:
        method = self.method(owner)
        return method if client is None else types.MethodType(method, client)


class _Sent(_Operation[P, T]):
    """A call, sent: its answer."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(self, client: None, owner: type[Client]) -> Callable[Concatenate[Client, P], T]: ...
    @overload
    def __get__(
        self, client: None, owner: type[AsyncClient]
    ) -> Callable[Concatenate[AsyncClient, P], Awaitable[T]]: ...
    @overload
    def __get__(self, client: Client, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, client: object | None, owner: type[Any]) -> Any:
        return self.bound(client, owner)


class _Listed(_Operation[P, T]):
    """A listing, followed: its items."""

    run = "each"

    def __init__(self, build: Callable[P, Listing[T]]) -> None:
        super().__init__(build)

    @overload
    def __get__(
        self, client: None, owner: type[Client]
    ) -> Callable[Concatenate[Client, P], Iterator[T]]: ...
    @overload
    def __get__(
        self, client: None, owner: type[AsyncClient]
    ) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[T]]: ...
    @overload
    def __get__(self, client: Client, owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, client: object | None, owner: type[Any]) -> Any:
        return self.bound(client, owner)


class _Operations:
    """Every endpoint (but the checks, whose lost answer is a denial) as a method of a client."""

    login = _Sent(calls.login)
    logout = _Sent(calls.logout)
    me = _Sent(calls.me)
    change_password = _Sent(calls.change_password)
    set_password = _Sent(calls.set_password)
    create_token = _Sent(calls.create_token)
    tokens = _Listed(calls.tokens)
    revoke_token = _Sent(calls.revoke_token)
    users = _Listed(calls.users)
    new_user = _Sent(calls.new_user)
    get_user = _Sent(calls.get_user)
    set_user = _Sent(calls.set_user)
    groups = _Listed(calls.groups)
    new_group = _Sent(calls.new_group)
    get_group = _Sent(calls.get_group)
    remove_group = _Sent(calls.remove_group)
    add_group_member = _Sent(calls.add_group_member)
    remove_group_member = _Sent(calls.remove_group_member)
    roles = _Listed(calls.roles)
    role_page = _Sent(calls.role_page)
    assign = _Sent(calls.assign)
    unassign = _Sent(calls.unassign)
    catalog_tasks = _Listed(calls.catalog_tasks)
    import_catalog = _Sent(calls.import_catalog)
    access_control = _Sent(calls.access_control)
    enable_control = _Sent(calls.enable_control)
    disable_control = _Sent(calls.disable_control)
    set_organization_config = _Sent(calls.set_organization_config)
    policies = _Listed(calls.policies)
    new_policy = _Sent(calls.new_policy)
    get_policy = _Sent(calls.get_policy)
    set_policy = _Sent(calls.set_policy)
    remove_policy = _Sent(calls.remove_policy)
    requests = _Listed(calls.requests)
    request_access = _Sent(calls.request_access)
    get_request = _Sent(calls.get_request)
    approve = _Sent(calls.approve)
    deny = _Sent(calls.deny)
    cancel = _Sent(calls.cancel)
    verify_request = _Sent(calls.verify_request)
    authorizations = _Listed(calls.authorizations)
    revoke = _Sent(calls.revoke)
    install_application = _Sent(calls.install_application)
    file_lockbox_request = _Sent(calls.file_lockbox_request)
    lockbox_requests = _Listed(calls.lockbox_requests)
    lockbox_request = _Sent(calls.lockbox_request)
    decide_lockbox_request = _Sent(calls.decide_lockbox_request)
    revoke_lockbox_request = _Sent(calls.revoke_lockbox_request)
    audit = _Listed(calls.audit)
    export_audit = _Sent(calls.export_audit)
    audit_checkpoint = _Sent(calls.audit_checkpoint)
    verify_audit = _Sent(calls.verify_audit)
    webhooks = _Listed(calls.webhooks)
    add_webhook = _Sent(calls.add_webhook)
    remove_webhook = _Sent(calls.remove_webhook)
    test_webhook = _Sent(calls.test_webhook)
    outbox = _Listed(calls.outbox)
    retry_message = _Sent(calls.retry_message)
    connectors = _Listed(calls.connectors)
    connector = _Sent(calls.connector)
    reconcile_connector = _Sent(calls.reconcile_connector)
    task_definitions = _Listed(calls.task_definitions)
    get_task_definition = _Sent(calls.get_task_definition)
    run_task = _Sent(calls.run_task)
    alive = _Sent(calls.alive)
    ready = _Sent(calls.ready)
    metrics = _Sent(calls.metrics)


class Client(_Operations):
    """A blocking client for one server and one bearer token."""

    answers: ClassVar[dict[str, str]] = {"send": "{}", "each": "Iterator[{}]"}

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

    def check(
        self,
        task: str | None = None,
        user: str | None = None,
        *,
        organization: str | None = None,
        service: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
    ) -> Decision:
        """May ``user`` (default: the caller) run ``task`` now (or, with ``organization`` and
        ``service``, reach that customer's data: ``check_customer_data``; with ``service``,
        ``scope`` and ``resource``, may the application use that data: ``check_data``)? No
        answer is a denial."""
        try:
            return self.send(
                calls.check(
                    task,
                    user,
                    organization=organization,
                    service=service,
                    scope=scope,
                    resource=resource,
                )
            )
        except Unreachable as exc:
            return _denied(self.url, exc)

    def check_data(self, user: str | None, service: str, scope: str, resource: str) -> Decision:
        """Data access: may the application ``user`` (None: the caller) use ``service``'s data
        ``scope`` on ``resource`` (mailbox:ceo@contoso.com) now? ``authorization_id`` is the
        grant that allows it. No answer is a denial."""
        return self.check(None, user, service=service, scope=scope, resource=resource)

    def check_customer_data(self, user: str | None, organization: str, service: str) -> Decision:
        """Customer Lockbox: may the operator's engineer ``user`` (None: the caller) reach
        ``service`` of the customer ``organization`` now? ``authorization_id`` is the lockbox
        request that allows it. No answer is a denial."""
        return self.check(None, user, organization=organization, service=service)

    def check_batch(self, checks: list[tuple[str, str | None]]) -> list[Decision]:
        """Up to 1,000 (task, user) checks at one instant; answers in the same order. No answer
        denies them all."""
        try:
            return self.send(calls.check_batch(checks))
        except Unreachable as exc:
            return [_denied(self.url, exc) for _ in checks]

    def role(self, name: str, *, kind: str = "role") -> Role:
        """A role (or role group, ``kind="role_group"``) with all its tasks and members."""
        role = _Conversation(_whole_role(name, kind))
        step = role.next(None)
        while step is not None:
            step = role.next(self.send(step) if isinstance(step, Call) else list(self.each(step)))
        return role.result


class AsyncClient(_Operations):
    """The same calls for asyncio code."""

    answers: ClassVar[dict[str, str]] = {"send": "Awaitable[{}]", "each": "AsyncIterator[{}]"}

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

    async def check(
        self,
        task: str | None = None,
        user: str | None = None,
        *,
        organization: str | None = None,
        service: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
    ) -> Decision:
        """May ``user`` (default: the caller) run ``task`` now (or, with ``organization`` and
        ``service``, reach that customer's data: ``check_customer_data``; with ``service``,
        ``scope`` and ``resource``, may the application use that data: ``check_data``)? No
        answer is a denial."""
        try:
            return await self.send(
                calls.check(
                    task,
                    user,
                    organization=organization,
                    service=service,
                    scope=scope,
                    resource=resource,
                )
            )
        except Unreachable as exc:
            return _denied(self.url, exc)

    async def check_data(
        self, user: str | None, service: str, scope: str, resource: str
    ) -> Decision:
        """Data access: may the application ``user`` (None: the caller) use ``service``'s data
        ``scope`` on ``resource`` now? No answer is a denial."""
        return await self.check(None, user, service=service, scope=scope, resource=resource)

    async def check_customer_data(
        self, user: str | None, organization: str, service: str
    ) -> Decision:
        """Customer Lockbox: may the operator's engineer ``user`` (None: the caller) reach
        ``service`` of the customer ``organization`` now? No answer is a denial."""
        return await self.check(None, user, organization=organization, service=service)

    async def check_batch(self, checks: list[tuple[str, str | None]]) -> list[Decision]:
        """Up to 1,000 (task, user) checks at one instant; answers in the same order. No answer
        denies them all."""
        try:
            return await self.send(calls.check_batch(checks))
        except Unreachable as exc:
            return [_denied(self.url, exc) for _ in checks]

    async def role(self, name: str, *, kind: str = "role") -> Role:
        """A role (or role group, ``kind="role_group"``) with all its tasks and members."""
        role = _Conversation(_whole_role(name, kind))
        step = role.next(None)
        while step is not None:
            if isinstance(step, Call):
                step = role.next(await self.send(step))
            else:
                step = role.next([item async for item in self.each(step)])
        return role.result
