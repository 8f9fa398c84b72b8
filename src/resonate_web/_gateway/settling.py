"""Settling from outside: cancelling an invocation, resolving what it awaits.

A human in the loop settles the promise an invocation waits on
(``ctx.promise()``): ``POST /promises/{id}/resolve`` with a JSON value, which
the function receives, or ``/reject`` with a JSON error, which it raises.
Which promises these routes may touch is the ``promises`` setting:
``awaited`` (the default) only those an invocation of an exposed function
created for someone outside to settle (what its ``awaiting`` lists); ``any``
every promise; ``off`` none. Anything else is a 404, so nothing leaks.

Settling is idempotent: the same way again answers 200 with the promise as
it stands; another way (resolving what was rejected) is 409 ``conflict``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from resonate.error import ServerError
from resonate.types import PromiseRecord, Value

from resonate_web._core import invocations
from resonate_web._core import sdk as _sdk
from resonate_web._core.parsing import json_object, validate_promise_id
from resonate_web._gateway.contract import Request, Response, Service, scoped
from resonate_web.problems import Problem

Action = Literal["resolve", "reject", "cancel"]
_STATE: dict[Action, str] = {
    "resolve": "resolved",
    "reject": "rejected",
    "cancel": "rejected_canceled",
}
_MEMBER: dict[Action, str | None] = {"resolve": "value", "reject": "error", "cancel": None}
#: Marks a rejection settled through these routes (its JSON error is under "error").
_REJECTION = "resonate-web:rejection"


def rejection(error: Any) -> dict[str, Any]:
    """A JSON error as a rejection the waiting function raises.

    The SDK raises ``ApplicationError(message)`` for a rejection with a
    ``message``; the JSON itself rides along under ``error``. The value is
    built here, member by member, so nothing a caller sends can make the
    waiting process load an object (the SDK unpickles a rejection's
    ``__py_pickle`` member).
    """
    message = error if isinstance(error, str) else json.dumps(error, separators=(",", ":"))
    return {"__type": "error", "message": message, "error": error, _REJECTION: True}


def _shown(record: PromiseRecord) -> Any:
    """What a settled promise's document shows as ``value``: for a rejection made
    here, the JSON error it was rejected with."""
    data = record.value.data
    if record.state == "rejected" and isinstance(data, dict) and data.get(_REJECTION):
        return data.get("error")
    if isinstance(data, dict) and _sdk.PICKLE_KEY in data:
        return {k: v for k, v in data.items() if k != _sdk.PICKLE_KEY}
    return data


def promise_document(
    record: PromiseRecord, awaited_by: str | None, scope: str = ""
) -> dict[str, Any]:
    """A promise as a caller whose ids live under ``scope`` sees it."""
    doc: dict[str, Any] = {
        "id": record.id.removeprefix(scope),
        "status": invocations.status_of(record),
    }
    if record.state != "pending":
        doc["value"] = _shown(record)
    if awaited_by is not None:
        doc["awaited_by"] = awaited_by.removeprefix(scope)
    return doc


async def _find(gw: Service, request: Request) -> tuple[PromiseRecord, str | None]:
    """The promise of the request, if the ``promises`` setting lets these routes
    touch it; with the invocation that awaits it."""
    policy = gw.settings.promises
    if policy == "off":
        raise Problem("not-found", "the promise routes are off (RESONATE_PROMISES=off)")
    public = validate_promise_id(request.path_params["id"])
    id = scoped(request.scope, public)
    record = await gw.read(id)
    missing = Problem("not-found", f"no promise with id {public!r} that this API may settle")
    if record is None:
        raise missing
    origin = record.tags.get("resonate:origin")
    awaited_by = origin if origin and origin != id else None
    if policy == "any":
        return record, awaited_by
    if awaited_by is None or not invocations.is_external(record):
        raise missing
    if "resonate:target" in record.tags or record.tags.get("resonate:timer") == "true":
        raise missing  # a call or a sleep: the backend settles it, not a person
    root = await gw.read(awaited_by)
    if root is None or invocations.function_of(root) not in gw.runtime.exposed:
        raise missing
    return record, awaited_by


def _member(request: Request, gw: Service, name: str | None) -> Any:
    payload = json_object(
        request.body,
        request.headers.get("content-type"),
        body_limit=gw.settings.body_limit,
        max_depth=gw.settings.json_depth,
        members=frozenset({name} if name else ()),
        hint=f'send {{"{name}": <JSON>}}' if name else "send no body",
    )
    return payload.get(name) if name else None


async def settle(gw: Service, id: str, action: Action, data: Any) -> PromiseRecord:
    promises = gw.runtime.client.promises
    settle = {"resolve": promises.resolve, "reject": promises.reject, "cancel": promises.cancel}
    try:
        await gw.bounded(settle[action](id, Value(data=data)))
    except ServerError as exc:
        if exc.code == 404:
            raise Problem("not-found", f"no promise with id {id!r}") from None
        if exc.code != 409:
            raise
    record = await gw.read(id)
    if record is None:  # pragma: no cover - settled, then gone
        raise Problem("not-found", f"no promise with id {id!r}")
    gw.announce(id, record)
    return record


def check(record: PromiseRecord, action: Action, what: str, scope: str = "") -> None:
    if record.state != _STATE[action]:
        status = invocations.status_of(record)
        public = record.id.removeprefix(scope)
        raise Problem("conflict", f"{what} {public!r} is already settled: {status}")


async def get_promise(gw: Service, request: Request) -> Response:
    record, awaited_by = await _find(gw, request)
    return Response(200, promise_document(record, awaited_by, request.scope))


async def settle_promise(gw: Service, action: Action, request: Request) -> Response:
    data = _member(request, gw, _MEMBER[action])
    record, awaited_by = await _find(gw, request)
    if record.state == "pending":
        value = rejection(data) if action == "reject" else data
        record = await settle(gw, record.id, action, value)
    check(record, action, "promise", request.scope)
    return Response(200, promise_document(record, awaited_by, request.scope))


async def cancel_invocation(gw: Service, request: Request) -> Response:
    """Cancel: the invocation's promise settles as canceled, so whoever waits on it
    sees ``canceled`` at once. Code already running is not interrupted; what it
    returns later is discarded (the promise is settled already)."""
    id, record = await gw.lookup(request)
    if record.state == "pending":
        record = await settle(gw, id, "cancel", None)
    check(record, "cancel", "invocation", request.scope)
    return Response(200, await gw.document(request.prefix, id, record, request.scope))
