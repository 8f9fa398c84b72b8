"""Django integration.

::

    INSTALLED_APPS = [..., "resonate_web.django"]
    RESONATE = {"FUNCTIONS": ["shop.durable"]}          # plus URL, TARGET, ... as needed
    urlpatterns = [..., path("resonate/", include("resonate_web.django.urls"))]

The runtime starts with a serving process (``runserver``, gunicorn, the ASGI
servers) or on first use; :func:`start` starts it elsewhere.
Your own views start durable functions with :func:`client` (sync views),
:func:`async_client` (``async def`` views) or :func:`dispatch`, which waits for
the surrounding ``transaction.atomic()`` to commit. ``python manage.py
resonate_worker`` runs the functions as a worker. See ``docs/django.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from django.db import transaction  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "resonate_web.django needs Django: pip install 'resonate-web[django]'"
    ) from exc

from resonate_web._core.parsing import new_id, validate_id, validate_priority, validate_tags
from resonate_web._inprocess import AsyncClient, SyncClient
from resonate_web.django import outbox
from resonate_web.django.conf import state

__all__ = ["ProblemMiddleware", "async_client", "client", "dispatch", "start"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the views' module is not needed to load the app.
    if name == "ProblemMiddleware":
        from resonate_web.django.views import ProblemMiddleware

        return ProblemMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def start() -> None:
    """Start the runtime now, not on first use: schedules fire from then on.

    ``runserver``, gunicorn and the ASGI servers start it with the process
    already; this is the one line (in ``wsgi.py`` or ``asgi.py``) for a server
    they do not cover.
    """
    state().portal.start()


def client() -> SyncClient:
    """The Resonate client for sync code (views, commands, signal handlers)."""
    return state().client


def async_client() -> AsyncClient:
    """The Resonate client for ``async def`` views."""
    return state().async_client


def dispatch(
    name: str,
    *args: Any,
    id: str | None = None,
    on_commit: bool = True,
    using: str | None = None,
    robust: bool = False,
    tags: Mapping[str, str] | None = None,
    priority: int | None = None,
    **kwargs: Any,
) -> str:
    """Start exposed function ``name`` as the routes would; returns its id at once.

    Inside ``transaction.atomic()`` (of database ``using``) the start is written
    into the outbox in that transaction and sent when it commits, never if it
    rolls back, so a worker never reads rows that were not committed. A start
    the backend does not take at the commit (it is down, or the process dies)
    is sent later by a sweeper (:mod:`resonate_web.django.outbox`): the commit
    never fails for it. ``on_commit=False`` starts it now; outside a
    transaction it starts now. The id (``id``, else a new unguessable one) is
    known before the start, so a page can link to the invocation. ``robust`` is
    kept for compatibility: a start at the commit never raises. ``tags``: the
    invocation's tags (checked at once, ``invalid-tags``), part of the call like
    its arguments. ``priority``: its place among waiting invocations (flow
    control), higher first. A debounced function's start joins the open
    invocation: outside a transaction the id returned is that invocation's; at a
    commit the id returned is the start's own, which names an invocation only if
    the start opened one.

    Arguments are bound and validated at once (a
    :class:`~resonate_web.Problem` ``invalid-arguments``); starting the same id
    again with the same call is a replay, not a second execution.
    """
    st = state()
    exposed = st.runtime.function(name)
    call_args, call_kwargs = exposed.bind(list(args), kwargs)
    id = new_id() if id is None else validate_id(id)
    checked = validate_tags(dict(tags) if tags is not None else None)
    rank = validate_priority(priority)
    if on_commit and transaction.get_connection(using).in_atomic_block:
        outbox.record(
            st, exposed, id, call_args, call_kwargs, tags=checked, priority=rank, using=using
        )
        return id
    return st.client.run(id, name, *call_args, tags=checked, priority=rank, **call_kwargs).id
