"""The dashboard: a page at ``{prefix}/ui`` and a live feed of invocations.

The page is a static shell (HTML, a little JavaScript and CSS shipped in
``resonate_web/ui/``): everything it shows comes from the JSON routes, which it
calls with the token the user typed (kept in ``sessionStorage``), so the
authorization hook decides what each caller sees. A hook that refuses the shell
with 401 still lets it load (it has no data, and it is where the token is typed);
any other refusal stands.

``GET {prefix}/events`` streams the status documents of invocations as this
process starts and settles them (:class:`Feed`), so the page's list updates
without polling. Both answer 404 unless the ``ui`` setting is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from resonate.handle import ResonateHandle
from resonate.types import PromiseRecord

from resonate_web._core import invocations, telemetry
from resonate_web._core import sdk as _sdk
from resonate_web._gateway.contract import Request, Response, Service, event_stream, sse_frame
from resonate_web.problems import Problem

#: The shell's routes: served even when the hook answers 401 (see the module doc).
SHELL_ROUTES = frozenset({"ui", "ui_asset"})

_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
#: Events a subscriber may fall behind by before it is dropped (it reconnects).
_BACKLOG = 256


def _asset(name: str) -> bytes:
    return resources.files("resonate_web._gateway").joinpath("ui", name).read_bytes()


def _enabled(gw: Service) -> None:
    if not gw.settings.ui:
        raise Problem("not-found", "the dashboard is off (set RESONATE_UI=1 to serve it)")


async def page(gw: Service, request: Request) -> Response:
    _enabled(gw)
    config = json.dumps(
        {"prefix": request.prefix, "auth": gw.authorize is not None}, separators=(",", ":")
    )
    text = _asset("index.html").decode()
    text = text.replace("{{prefix}}", html.escape(request.prefix, quote=True))
    text = text.replace("{{config}}", html.escape(config, quote=True))
    return Response(
        200,
        text.encode(),
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        media_type="text/html; charset=utf-8",
    )


async def asset(gw: Service, request: Request) -> Response:
    _enabled(gw)
    name = request.path_params["asset"]
    if name not in _ASSETS:
        raise Problem("not-found", f"no dashboard file {name!r}")
    return Response(
        200,
        _asset(name),
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        media_type=_ASSETS[name],
    )


class Feed:
    """A broadcast of the invocations this process starts and settles.

    Subscribers get ``(stored id, record)`` pairs; each builds the documents
    its caller may see. Fed by the gateway's start, cancel and settle paths, by
    the settle notifications its waiters wake on, and by one watcher per
    invocation it starts (while the dashboard is on).
    """

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[tuple[str, PromiseRecord] | None]] = set()
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, id: str, record: PromiseRecord) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait((id, record))
            except asyncio.QueueFull:
                # Too far behind: end its stream (None), the page reconnects and re-lists.
                self._subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        queue: asyncio.Queue[tuple[str, PromiseRecord] | None] = asyncio.Queue(_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def watch(self, gw: Service, id: str, function: str, handle: ResonateHandle[Any]) -> None:
        """Once ``id`` (of ``function``) settles: count it in the settled metric (from
        the SDK's notification) and, while the dashboard has viewers, publish it
        (read back, for the document)."""

        async def watcher() -> None:
            with contextlib.suppress(Exception):
                settled = await _sdk.settled(handle)
                telemetry.count_settled(function, invocations.status_of_state(settled.state))
                if not (gw.settings.ui and self.subscribers):
                    return
                record = await gw.read(id)
                if record is not None:
                    self.publish(id, record)

        task = asyncio.get_running_loop().create_task(watcher())
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)


async def events(gw: Service, request: Request) -> Response:
    _enabled(gw)
    return event_stream(_stream(gw, request))


async def _stream(gw: Service, request: Request) -> AsyncIterator[bytes]:
    scope = request.scope
    with gw.feed.subscribe() as queue:
        yield b": subscribed\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), gw.settings.keepalive)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is None:
                return
            id, record = item
            if not id.startswith(scope) or invocations.function_of(record) is None:
                continue
            try:
                doc = await gw.document(request.prefix, id, record, scope)
            except Problem:
                continue
            yield sse_frame("invocation", doc)
