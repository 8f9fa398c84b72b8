"""A Python client for the HTTP routes: :class:`Client` (sync) and :class:`AsyncClient`.

For another service, a script or a test that talks to a resonate-web gateway
over HTTP (code inside the app uses the client its framework hands it)::

    from resonate_web.client import Client, Rejected

    with Client("http://127.0.0.1:8000", token="...") as api:
        started = api.start("add", 1, 2)             # a StatusDocument
        print(api.wait(started.id, timeout=10))      # 3
        for doc in api.list(function="add"):         # follows the cursor
            print(doc.id, doc.status)

Results are the pydantic models the routes document (``resonate_web.models``).
Every problem+json answer raises a :class:`ProblemError` subclass named after
its slug (:class:`NotFound`, :class:`Conflict`, :class:`InvalidArguments`, ...)
carrying the problem. A 503 is retried, honouring ``Retry-After``, at most
``retries`` times; a start without an id gets one here first, so a retried
start is a replay, never a second invocation.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx

from resonate_web.models import (
    BulkResult,
    FunctionInfo,
    FunctionList,
    FunctionStats,
    InvocationList,
    PromiseDocument,
    StatusDocument,
    TreeNode,
)
from resonate_web.problems import PROBLEM_TYPE_PREFIX, field_path

__all__ = [
    "PROBLEMS",
    "AsyncClient",
    "BackendUnavailable",
    "Canceled",
    "Client",
    "Conflict",
    "Forbidden",
    "IdempotencyKeyReused",
    "InvalidArguments",
    "InvalidCron",
    "InvalidId",
    "InvalidJson",
    "InvalidQuery",
    "InvalidTags",
    "InvalidWait",
    "InvocationError",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "RateLimited",
    "Rejected",
    "TimedOut",
    "TooManyWaiters",
    "Unauthorized",
    "UnknownFunction",
    "UnsupportedMediaType",
]

#: The longest single long-poll :meth:`Client.wait` asks for (the server caps it too).
LONG_POLL = 25.0


class ProblemError(Exception):
    """An ``application/problem+json`` answer; :attr:`problem` is its body."""

    slug = ""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(f"{problem.get('status')} {problem.get('title')}: {problem.get('detail')}")
        self.problem = problem
        self.status: int = int(problem.get("status") or 0)
        self.detail: str = str(problem.get("detail") or "")


# One subclass per problem slug (the contract's list), raised for that slug.


class InvalidJson(ProblemError):
    slug = "invalid-json"


class UnsupportedMediaType(ProblemError):
    slug = "unsupported-media-type"


class PayloadTooLarge(ProblemError):
    slug = "payload-too-large"


class InvalidId(ProblemError):
    slug = "invalid-id"


class InvalidWait(ProblemError):
    slug = "invalid-wait"


class UnknownFunction(ProblemError):
    slug = "unknown-function"


class InvalidArguments(ProblemError):
    """The arguments do not fit the function: :attr:`fields` names those that failed."""

    slug = "invalid-arguments"

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem)
        errors = problem.get("errors")
        #: Each failed argument as a path (``b``, ``rest[0]``), from the problem's ``errors``.
        self.fields: list[str] = [
            field_path(e.get("loc") or [])
            for e in (errors if isinstance(errors, list) else [])
            if isinstance(e, dict)
        ]
        missing = [f for f in self.fields if f"{f} (" not in self.detail]
        if missing:
            self.args = (f"{self.args[0]} ({', '.join(missing)})",)


class IdempotencyKeyReused(ProblemError):
    slug = "idempotency-key-reused"


class NotFound(ProblemError):
    slug = "not-found"


class Conflict(ProblemError):
    slug = "conflict"


class InvalidCron(ProblemError):
    slug = "invalid-cron"


class Unauthorized(ProblemError):
    slug = "unauthorized"


class Forbidden(ProblemError):
    slug = "forbidden"


class BackendUnavailable(ProblemError):
    slug = "backend-unavailable"


class TooManyWaiters(ProblemError):
    slug = "too-many-waiters"


class InvalidQuery(ProblemError):
    slug = "invalid-query"


class InvalidTags(ProblemError):
    slug = "invalid-tags"


class RateLimited(ProblemError):
    """The function's rate limit refuses starts for now (``Retry-After`` says how long)."""

    slug = "rate-limited"


#: The ProblemError subclass of each slug.
PROBLEMS: dict[str, type[ProblemError]] = {cls.slug: cls for cls in ProblemError.__subclasses__()}


class InvocationError(Exception):
    """The invocation settled, but not with a value; :attr:`document` says how."""

    def __init__(self, document: StatusDocument) -> None:
        self.document = document
        self.id = document.id
        super().__init__(f"invocation {document.id} {document.status}")


class Rejected(InvocationError):
    """The function raised: :attr:`type` is the exception's class name."""

    def __init__(self, document: StatusDocument) -> None:
        super().__init__(document)
        error = document.error
        self.type = error.type if error else "Error"
        self.message = error.message if error else ""
        self.args = (f"invocation {document.id} rejected: {self.type}: {self.message}",)


class Canceled(InvocationError):
    """Someone canceled the invocation."""


class TimedOut(InvocationError):
    """The invocation's own timeout passed before it settled."""


_OUTCOMES: dict[str, type[InvocationError]] = {
    "rejected": Rejected,
    "canceled": Canceled,
    "timedout": TimedOut,
}


def outcome(document: StatusDocument) -> Any:
    """A settled invocation's result, or the :class:`InvocationError` it settled with."""
    if document.status == "resolved":
        return document.result
    raise _OUTCOMES[document.status](document)


# ── what both clients share: requests built and answers read the same way ───


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    params: Mapping[str, str | list[str]] | None = None
    body: Any = None
    headers: dict[str, str] | None = None

    def send_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.body is not None:
            kwargs["content"] = json.dumps(self.body).encode()
            kwargs["headers"] = {**(self.headers or {}), "content-type": "application/json"}
        return kwargs


def _problem(response: httpx.Response, base: str = "", prefix: str = "") -> ProblemError | None:
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not str(body.get("type", "")).startswith(PROBLEM_TYPE_PREFIX):
        detail = response.text
        if response.status_code == 404:
            detail = _not_routes(response, base, prefix)
        body = {"status": response.status_code, "title": "HTTP error", "detail": detail}
    slug = str(body.get("type", "")).removeprefix(PROBLEM_TYPE_PREFIX)
    return PROBLEMS.get(slug, ProblemError)(body)


def _not_routes(response: httpx.Response, base: str, prefix: str) -> str:
    """A 404 that is not resonate-web's: the client is not pointed at the routes."""
    url = response.request.url
    hint = (
        f"is base_url the app's root and prefix where the routes are mounted? This client "
        f"asked under {base}{prefix}/ (base_url {base!r}, prefix {prefix!r}): for routes at "
        "http://host:8000/resonate, base_url is 'http://host:8000' and prefix '/resonate' "
        "(the default); for routes at http://host:8000/api/resonate, prefix='/api/resonate'"
    )
    if prefix and base.rstrip("/").endswith(prefix):
        hint = (
            f"base_url {base!r} already ends with the prefix {prefix!r}: drop it from base_url. "
            + hint
        )
    return f"{response.request.method} {url} answered 404 with no resonate-web problem: {hint}"


def _retry_after(response: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before retrying ``response``, or ``None`` when it is final."""
    if response.status_code != 503:
        return None
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return min(0.2 * 2.0**attempt, 5.0)
    return max(0.0, seconds)


def _wait(wait: float | None) -> dict[str, str]:
    return {} if wait is None else {"wait": repr(float(wait))}


class _Routes:
    """The requests of every route, and how each answer is read."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")

    def functions(self) -> _Call:
        return _Call("GET", f"{self.prefix}/functions")

    def start(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        id: str | None,
        wait: Any,
        tags: Mapping[str, str] | None = None,
        priority: int | None = None,
    ) -> _Call:
        params = {"id": id or uuid.uuid4().hex, **_wait(wait)}
        body: dict[str, Any] = {"args": list(args), "kwargs": kwargs}
        if tags:
            body["tags"] = dict(tags)
        if priority is not None:
            body["priority"] = priority
        return _Call("POST", f"{self.prefix}/functions/{name}", params, body)

    def status(self, id: str, wait: float | None = None) -> _Call:
        return _Call("GET", f"{self.prefix}/invocations/{id}", _wait(wait))

    def cancel(self, id: str) -> _Call:
        return _Call("POST", f"{self.prefix}/invocations/{id}/cancel")

    def tree(self, id: str, values: bool = False) -> _Call:
        params = {"values": "true"} if values else None
        return _Call("GET", f"{self.prefix}/invocations/{id}/tree", params)

    def events(self, id: str) -> _Call:
        return _Call("GET", f"{self.prefix}/invocations/{id}/events")

    def list(self, filters: dict[str, Any], cursor: str | None, method: str = "GET") -> _Call:
        params = _filters(filters)
        if cursor:
            params["cursor"] = cursor
        return _Call(method, f"{self.prefix}/invocations", params)

    def rerun(self, id: str, new_id: str | None) -> _Call:
        params: dict[str, str | list[str]] = {"id": new_id or uuid.uuid4().hex}
        return _Call("POST", f"{self.prefix}/invocations/{id}/rerun", params)

    def bulk(self, action: str, filters: dict[str, Any], cursor: str | None) -> _Call:
        params = _filters(filters)
        if cursor:
            params["cursor"] = cursor
        return _Call("POST", f"{self.prefix}/invocations/{action}", params)

    def stats(self, name: str, window: int | None) -> _Call:
        params: dict[str, str | list[str]] = {} if window is None else {"window": str(window)}
        return _Call("GET", f"{self.prefix}/functions/{name}/stats", params)

    def promise(
        self, id: str, action: str | None = None, member: str = "", value: Any = None
    ) -> _Call:
        path = f"{self.prefix}/promises/{id}"
        if action is None:
            return _Call("GET", path)
        return _Call("POST", f"{path}/{action}", body={member: value} if member else None)


def _filters(filters: dict[str, Any]) -> dict[str, str | list[str]]:
    """Query parameters of the list filters; ``tags`` a mapping, sent as ``tag=k:v``."""
    params: dict[str, str | list[str]] = {
        k: str(v) for k, v in filters.items() if v is not None and k != "tags"
    }
    tags = filters.get("tags")
    if tags:
        params["tag"] = [f"{k}:{v}" for k, v in tags.items()]
    return params


#: The most invocations one page of ``GET /invocations`` holds.
MAX_PAGE = 100


class _Pages:
    """The pages of one listing: ``limit`` in all at most, ``page_size`` per request."""

    def __init__(
        self,
        function: str | None,
        status: str | None,
        schedule: str | None,
        limit: int | None,
        page_size: int | None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        for name, value in (("limit", limit), ("page_size", page_size)):
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} is a whole number >= 1 or None, got {value!r}")
        self.filters: dict[str, Any] = {
            "function": function,
            "status": status,
            "schedule": schedule,
            "tags": dict(tags or {}),
        }
        self.left = limit
        self.page_size = page_size
        self.cursor: str | None = None
        self.done = False

    def next_call(self, routes: _Routes) -> _Call | None:
        if self.done or self.left == 0:
            return None
        sizes = [s for s in (self.page_size, self.left) if s is not None]
        size = min(*sizes, MAX_PAGE) if sizes else None
        return routes.list({**self.filters, "limit": size}, self.cursor)

    def take(self, data: Any) -> list[StatusDocument]:
        page = InvocationList.model_validate(data)
        docs = page.invocations if self.left is None else page.invocations[: self.left]
        if self.left is not None:
            self.left -= len(docs)
        self.cursor = page.next
        self.done = not page.next
        return docs


def _events(lines: Iterator[str] | list[str]) -> Iterator[StatusDocument]:
    data: list[str] = []
    event = ""
    for line in lines:
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif not line and data:
            payload = json.loads("\n".join(data))
            data, name = [], event
            if name == "error":
                raise PROBLEMS.get(
                    str(payload.get("type", "")).removeprefix(PROBLEM_TYPE_PREFIX), ProblemError
                )(payload)
            yield StatusDocument.model_validate(payload)


# ── the clients ─────────────────────────────────────────────────────────────


class _Base:
    def __init__(self, base_url: str, token: str | None, prefix: str, retries: int) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token}"} if token else {}
        self._routes = _Routes(prefix)
        self.retries = retries

    def _problem(self, response: httpx.Response) -> ProblemError | None:
        return _problem(response, self._base_url, self._routes.prefix)

    def _answer(self, response: httpx.Response) -> Any:
        problem = self._problem(response)
        if problem is not None:
            raise problem
        return response.json()

    @staticmethod
    def _next_wait(id: str, deadline: float | None, timeout: float | None) -> float:
        """How long the next long-poll of :meth:`Client.wait` asks for."""
        if deadline is None:
            return LONG_POLL
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"invocation {id} still pending after {timeout}s")
        return min(left, LONG_POLL)


class Client(_Base):
    """The routes over HTTP, blocking. ``base_url`` is the app's root; ``prefix`` its
    mount (``/resonate``); ``token`` is sent as ``Authorization: Bearer``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        prefix: str = "/resonate",
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, prefix, retries)
        self._http = httpx.Client(
            base_url=base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call) -> Any:
        attempt = 0
        while True:
            response = self._http.request(call.method, call.path, **call.send_kwargs())
            delay = _retry_after(response, attempt)
            if delay is None or attempt >= self.retries:
                break
            time.sleep(delay)
            attempt += 1
        return self._answer(response)

    def functions(self) -> list[FunctionInfo]:
        return FunctionList.model_validate(self._send(self._routes.functions())).functions

    def start(
        self,
        name: str,
        *args: Any,
        id: str | None = None,
        wait: float | None = None,
        tags: Mapping[str, str] | None = None,
        priority: int | None = None,
        **kwargs: Any,
    ) -> StatusDocument:
        """Start ``name`` with these arguments (``POST /functions/{name}``), tagged
        with ``tags``; ``priority`` orders it among waiting invocations (flow control)."""
        call = self._routes.start(name, args, kwargs, id, wait, tags, priority)
        return StatusDocument.model_validate(self._send(call))

    def status(self, id: str, *, wait: float | None = None) -> StatusDocument:
        return StatusDocument.model_validate(self._send(self._routes.status(id, wait)))

    def wait(self, id: str, timeout: float | None = None) -> Any:
        """Long-poll until ``id`` settles; its result, or raise :class:`Rejected`,
        :class:`Canceled` or :class:`TimedOut`. ``TimeoutError`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            doc = self.status(id, wait=self._next_wait(id, deadline, timeout))
            if doc.status != "pending":
                return outcome(doc)

    def events(self, id: str) -> Iterator[StatusDocument]:
        """The status document now and when it settles (server-sent events)."""
        call = self._routes.events(id)
        with self._http.stream(call.method, call.path) as response:
            if response.status_code >= 400:
                response.read()
                raise self._problem(response) or ProblemError({"status": response.status_code})
            yield from _events(response.iter_lines())

    def cancel(self, id: str) -> StatusDocument:
        return StatusDocument.model_validate(self._send(self._routes.cancel(id)))

    def list(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[StatusDocument]:
        """Invocations, newest first, following the cursor page after page.

        ``tags``: only those carrying every one of these tags. ``limit`` is how
        many it yields at most in all (``None``: every one); ``page_size`` how
        many each request asks for (the server's default, 20, at most 100)."""
        pages = _Pages(function, status, schedule, limit, page_size, tags)
        while (call := pages.next_call(self._routes)) is not None:
            yield from pages.take(self._send(call))

    def rerun(self, id: str, *, new_id: str | None = None) -> StatusDocument:
        """Start settled invocation ``id`` again, with its function, arguments and
        tags, as invocation ``new_id`` (``POST /invocations/{id}/rerun``)."""
        return StatusDocument.model_validate(self._send(self._routes.rerun(id, new_id)))

    def cancel_many(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> BulkResult:
        """Cancel the invocations the filters find, at most ``limit`` (1-1000, the
        server's default 100), newest first; ``next`` continues."""
        filters = {"function": function, "status": status, "schedule": schedule}
        call = self._routes.bulk("cancel", {**filters, "tags": tags, "limit": limit}, cursor)
        return BulkResult.model_validate(self._send(call))

    def rerun_many(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> BulkResult:
        """Rerun the (settled) invocations the filters find, as :meth:`cancel_many`."""
        filters = {"function": function, "status": status, "schedule": schedule}
        call = self._routes.bulk("rerun", {**filters, "tags": tags, "limit": limit}, cursor)
        return BulkResult.model_validate(self._send(call))

    def stats(self, name: str, *, window: int | None = None) -> FunctionStats:
        """``name``'s counts, durations and failure rate over the last ``window``
        seconds (the server's default, 3600)."""
        return FunctionStats.model_validate(self._send(self._routes.stats(name, window)))

    def tree(self, id: str, *, values: bool = False) -> TreeNode:
        return TreeNode.model_validate(self._send(self._routes.tree(id, values)))

    def promise(self, id: str) -> PromiseDocument:
        return PromiseDocument.model_validate(self._send(self._routes.promise(id)))

    def resolve(self, id: str, value: Any = None) -> PromiseDocument:
        call = self._routes.promise(id, "resolve", "value", value)
        return PromiseDocument.model_validate(self._send(call))

    def reject(self, id: str, error: Any = None) -> PromiseDocument:
        call = self._routes.promise(id, "reject", "error", error)
        return PromiseDocument.model_validate(self._send(call))

    def cancel_promise(self, id: str) -> PromiseDocument:
        return PromiseDocument.model_validate(self._send(self._routes.promise(id, "cancel")))


class AsyncClient(_Base):
    """:class:`Client`, awaitable."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        prefix: str = "/resonate",
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, prefix, retries)
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call) -> Any:
        attempt = 0
        while True:
            response = await self._http.request(call.method, call.path, **call.send_kwargs())
            delay = _retry_after(response, attempt)
            if delay is None or attempt >= self.retries:
                break
            await asyncio.sleep(delay)
            attempt += 1
        return self._answer(response)

    async def functions(self) -> list[FunctionInfo]:
        return FunctionList.model_validate(await self._send(self._routes.functions())).functions

    async def start(
        self,
        name: str,
        *args: Any,
        id: str | None = None,
        wait: float | None = None,
        tags: Mapping[str, str] | None = None,
        priority: int | None = None,
        **kwargs: Any,
    ) -> StatusDocument:
        call = self._routes.start(name, args, kwargs, id, wait, tags, priority)
        return StatusDocument.model_validate(await self._send(call))

    async def status(self, id: str, *, wait: float | None = None) -> StatusDocument:
        return StatusDocument.model_validate(await self._send(self._routes.status(id, wait)))

    async def wait(self, id: str, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            doc = await self.status(id, wait=self._next_wait(id, deadline, timeout))
            if doc.status != "pending":
                return outcome(doc)

    async def events(self, id: str) -> AsyncIterator[StatusDocument]:
        call = self._routes.events(id)
        async with self._http.stream(call.method, call.path) as response:
            if response.status_code >= 400:
                await response.aread()
                raise self._problem(response) or ProblemError({"status": response.status_code})
            lines: list[str] = []
            async for line in response.aiter_lines():
                lines.append(line)
                if not line:
                    for doc in _events(lines):
                        yield doc
                    lines = []

    async def cancel(self, id: str) -> StatusDocument:
        return StatusDocument.model_validate(await self._send(self._routes.cancel(id)))

    async def list(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[StatusDocument]:
        pages = _Pages(function, status, schedule, limit, page_size, tags)
        while (call := pages.next_call(self._routes)) is not None:
            for doc in pages.take(await self._send(call)):
                yield doc

    async def rerun(self, id: str, *, new_id: str | None = None) -> StatusDocument:
        return StatusDocument.model_validate(await self._send(self._routes.rerun(id, new_id)))

    async def cancel_many(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> BulkResult:
        filters = {"function": function, "status": status, "schedule": schedule}
        call = self._routes.bulk("cancel", {**filters, "tags": tags, "limit": limit}, cursor)
        return BulkResult.model_validate(await self._send(call))

    async def rerun_many(
        self,
        *,
        function: str | None = None,
        status: str | None = None,
        schedule: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> BulkResult:
        filters = {"function": function, "status": status, "schedule": schedule}
        call = self._routes.bulk("rerun", {**filters, "tags": tags, "limit": limit}, cursor)
        return BulkResult.model_validate(await self._send(call))

    async def stats(self, name: str, *, window: int | None = None) -> FunctionStats:
        return FunctionStats.model_validate(await self._send(self._routes.stats(name, window)))

    async def tree(self, id: str, *, values: bool = False) -> TreeNode:
        return TreeNode.model_validate(await self._send(self._routes.tree(id, values)))

    async def promise(self, id: str) -> PromiseDocument:
        return PromiseDocument.model_validate(await self._send(self._routes.promise(id)))

    async def resolve(self, id: str, value: Any = None) -> PromiseDocument:
        call = self._routes.promise(id, "resolve", "value", value)
        return PromiseDocument.model_validate(await self._send(call))

    async def reject(self, id: str, error: Any = None) -> PromiseDocument:
        call = self._routes.promise(id, "reject", "error", error)
        return PromiseDocument.model_validate(await self._send(call))

    async def cancel_promise(self, id: str) -> PromiseDocument:
        call = self._routes.promise(id, "cancel")
        return PromiseDocument.model_validate(await self._send(call))
