"""Django's own login for the routes and the dashboard: a ready ``AUTHORIZE`` hook.

::

    RESONATE = {"AUTHORIZE": "resonate_web.django.auth.authorize", ...}

It reads the session's user (``django.contrib.auth`` with
``SessionMiddleware`` and ``AuthenticationMiddleware``):

- an active staff user, or one with the permission
  ``resonate_web.manage_invocations``, may do everything (start, cancel,
  settle, schedules);
- an active user with ``resonate_web.view_invocations`` may read: every ``GET``
  route (the lists, a status, its events and tree, promises, schedules) and the
  dashboard;
- anyone else, logged in or not, gets 403 ``forbidden``.

Both permissions come with resonate-web's app (``manage.py migrate`` creates
them); grant them to users or groups in the admin.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections  # type: ignore[import-untyped]

from resonate_web._gateway.auth import Principal, forbidden
from resonate_web._gateway.router import ROUTES

if TYPE_CHECKING:
    from resonate_web._gateway.contract import Request

__all__ = ["MANAGE_PERMISSION", "READ_ACTIONS", "VIEW_PERMISSION", "authorize"]

#: Reads everything the routes and the dashboard show.
VIEW_PERMISSION = "resonate_web.view_invocations"
#: Does everything the routes do (as staff may).
MANAGE_PERMISSION = "resonate_web.manage_invocations"
#: The routes that only read: every ``GET`` route, the dashboard included.
READ_ACTIONS = frozenset(route.name for route in ROUTES if route.method == "GET")


def decide(user: Any, action: str) -> Principal:
    """The principal ``user`` acts as for route ``action``, or a 403 ``forbidden``."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise forbidden("log in (Django's session) to use these routes")
    if not user.is_active:
        raise forbidden("this user is not active")
    principal = Principal(subject=str(user.get_username()))
    if user.is_staff or user.has_perm(MANAGE_PERMISSION):
        return principal
    if action in READ_ACTIONS and user.has_perm(VIEW_PERMISSION):
        return principal
    needed = VIEW_PERMISSION if action in READ_ACTIONS else MANAGE_PERMISSION
    raise forbidden(f"{action!r} needs staff status or the permission {needed!r}")


def _decide_in_thread(user: Any, action: str) -> Principal:
    try:
        return decide(user, action)
    finally:
        close_old_connections()


async def authorize(request: Request, action: str, resource: str | None) -> Principal:
    """The ``AUTHORIZE`` hook (see the module). The user is loaded from the session
    in a worker thread: the hook runs on the runtime's event loop, where the ORM
    may not run."""
    return await asyncio.to_thread(_decide_in_thread, request.user, action)
