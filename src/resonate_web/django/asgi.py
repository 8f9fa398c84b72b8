"""Django's ASGI application with the Resonate runtime on the server's own event loop.

``asgi.py``::

    from resonate_web.django.asgi import get_asgi_application

    application = get_asgi_application()

Django gives an ASGI app no lifespan, so with Django's own
``get_asgi_application`` the runtime lives on a loop of its own, in a thread,
and every call from an ``async def`` view hops to it and back. This one answers
the server's lifespan (uvicorn, hypercorn): at its start the runtime starts on
the server's loop, before any request (schedules fire, the backend is named),
and async views and the routes await it directly; sync views hop to it from
their threads. At the lifespan's end it stops. Everything else is Django's
application, unchanged. A server that sends no lifespan (daphne) gets the
runtime on first use, on a loop of its own, as without this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

__all__ = ["get_asgi_application"]


def get_asgi_application() -> ASGIApp:
    """Django's ASGI application, with a lifespan that hosts the runtime on the
    server's loop (see the module)."""
    from resonate_web.django import conf

    # Not in a thread of its own when the app is set up: the lifespan hosts it.
    conf.hosted_by_server = True
    from django.core.asgi import (  # type: ignore[import-untyped]
        get_asgi_application as django_application,
    )

    django = django_application()
    hosted = False

    async def application(
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        nonlocal hosted
        if scope["type"] != "lifespan":
            await django(scope, receive, send)
            return
        from resonate_web.django import outbox

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    st = conf.state()
                    await st.portal.attach()
                    outbox.ensure_sweeper(st)
                    hosted = True
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if hosted:
                    await conf.state().portal.detach()
                    hosted = False
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application
