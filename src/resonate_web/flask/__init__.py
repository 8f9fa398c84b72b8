"""Flask adapter: the ``Resonate`` extension.

::

    resonate = Resonate(functions)        # or Resonate(app, functions)

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config.from_prefixed_env()    # FLASK_RESONATE_URL -> RESONATE_URL, ...
        resonate.init_app(app)
        return app

``init_app`` registers the contract's routes as a blueprint under the mount
prefix, a ``flask resonate`` CLI group, and keeps everything it builds for that
app in ``app.extensions["resonate"]``: one extension object serves any number of
apps, each with its own configuration. Settings come from the extension's
keyword arguments, then the app's ``RESONATE_*`` config keys, then the
environment, through the core's one parser.

The Resonate client lives on the runtime's background loop (one per process,
so each gunicorn worker gets its own): views use :attr:`Resonate.client` (sync)
or :attr:`Resonate.async_client` (``async def`` views). Inline durable functions
run inside an app context. Under ``flask run``, gunicorn and the ASGI servers
(see :mod:`resonate_web._core.startup`) the runtime starts with the serving process,
so schedules fire before any request; elsewhere on first use, or at
:meth:`Resonate.start`.
"""

from __future__ import annotations

import atexit
import re
import sys
from collections.abc import Callable
from typing import Any

try:
    import click
    from flask import Blueprint, Flask, current_app, has_request_context, request
    from flask import Response as FlaskResponse
    from flask.cli import AppGroup
    from flask.helpers import get_debug_flag
    from werkzeug.serving import is_running_from_reloader
except ImportError as exc:  # pragma: no cover
    raise ImportError("resonate_web.flask needs Flask: pip install 'resonate-web[flask]'") from exc

from resonate_web._adapter import CHUNK, neutral_request, read_capped_sync, serve_sync, sync_stream
from resonate_web._core.exposure import Functions
from resonate_web._core.runtime import within
from resonate_web._core.startup import autostart
from resonate_web._gateway.auth import Authorize
from resonate_web._gateway.contract import problem_response
from resonate_web._gateway.router import ROUTES, Route
from resonate_web._inprocess import AsyncClient, Hosted, SyncClient, host
from resonate_web.problems import Problem
from resonate_web.settings import ConfigurationError, Settings
from resonate_web.worker import run_worker

__all__ = ["EXTENSION_KEY", "Resonate"]

EXTENSION_KEY = "resonate"


#: What :meth:`Resonate.init_app` builds for one app (``app.extensions["resonate"]``).
ResonateState = Hosted


class Resonate:
    """The Flask extension. Holds the functions and settings overrides, never an app.

    ``functions`` is the :class:`~resonate_web.Functions` to serve (a fresh one
    by default, filled with :meth:`expose`). Keyword arguments are settings
    (``url=``, ``prefix=``, ...) for every app; each app's ``RESONATE_*`` config
    supplies the rest.
    """

    def __init__(
        self,
        app: Flask | None = None,
        functions: Functions | None = None,
        *,
        authorize: Authorize | None = None,
        **settings: Any,
    ) -> None:
        self.functions = Functions() if functions is None else functions
        #: The access hook for every app (see docs/security.md); else the settings' policy.
        self.authorize = authorize
        self._overrides = settings
        Settings.load(environ={}, **settings)  # reject unknown names and bad values now
        if app is not None:
            self.init_app(app)

    def expose(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """:meth:`Functions.expose <resonate_web.Functions.expose>`, as a decorator."""
        return self.functions.expose(fn, **options)

    def expose_remote(self, name: str, **options: Any) -> None:
        self.functions.expose_remote(name, **options)

    def init_app(self, app: Flask) -> None:
        """Configure ``app``: settings, runtime, routes and CLI. Once per app."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"resonate-web is already initialized on app {app.name!r}: "
                "call init_app once per app"
            )
        config = {k: v for k, v in app.config.items() if k.startswith("RESONATE_")}
        settings = Settings.load(config, **self._overrides)
        hosted = host(
            settings, self.functions, wrap=within(app.app_context), authorize=self.authorize
        )
        app.extensions[EXTENSION_KEY] = hosted
        app.register_blueprint(_blueprint(), url_prefix=settings.prefix or None)
        # A Problem the client raises in a view of yours answers as problem+json.
        app.register_error_handler(Problem, _problem_view)
        app.cli.add_command(cli)
        atexit.register(hosted.portal.close)
        autostart(lambda: hosted.portal, serving_command=_flask_run())

    def start(self, app: Flask | None = None) -> None:
        """Start ``app``'s runtime now (default: the current app), not on first use.

        ``flask run``, gunicorn and the ASGI servers start it with the process
        already; this is the one line for a server they do not cover (``app.run()``
        in a script, uWSGI's ``@postfork``, ...): schedules fire from then on.
        """
        _state(app or current_app).portal.start()

    def state(self, app: Flask | None = None) -> ResonateState:
        """The state of ``app`` (default: the current app)."""
        return _state(app or current_app)

    @property
    def client(self) -> SyncClient:
        """The current app's Resonate client, for sync views and code."""
        state = _state(current_app)
        if has_request_context():
            state.portal.check_server(multiprocess=_multiprocess())
        return state.client

    @property
    def async_client(self) -> AsyncClient:
        """The current app's Resonate client, for ``async def`` views."""
        state = _state(current_app)
        if has_request_context():
            state.portal.check_server(multiprocess=_multiprocess())
        return state.async_client

    def shutdown(self, app: Flask | None = None) -> None:
        """Stop ``app``'s runtime now (otherwise it stops at interpreter exit)."""
        portal = _state(app or current_app).portal
        portal.close()
        atexit.unregister(portal.close)


def _problem_view(problem: Problem) -> FlaskResponse:
    response = problem_response(problem, request.path)
    return FlaskResponse(
        response.content(),
        status=response.status,
        headers=response.headers,
        mimetype=response.media_type,
    )


def _state(app: Flask) -> ResonateState:
    state: ResonateState | None = app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise RuntimeError(
            f"resonate-web is not initialized on app {app.name!r}: "
            "call resonate.init_app(app) in the app factory"
        )
    return state


def _flask_run() -> bool:
    """Whether ``flask run`` is loading the app in the process that serves it.

    With the reloader, ``flask run`` loads the app in a parent process too, which
    only restarts the child that serves (``WERKZEUG_RUN_MAIN``).
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command.name != "run":
        return False
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or is_running_from_reloader()


def _multiprocess() -> bool:
    return bool(request.environ.get("wsgi.multiprocess", False))


def _blueprint() -> Blueprint:
    blueprint = Blueprint("resonate", __name__)
    for route in ROUTES:
        rule = re.sub(r"\{(\w+)\}", r"<\1>", route.path)
        blueprint.add_url_rule(rule, route.name, _view(route), methods=[route.method])
    return blueprint


def _view(route: Route) -> Callable[..., FlaskResponse]:
    def view(**path_params: str) -> FlaskResponse:
        state = _state(current_app)
        body = b""
        if route.method == "POST":
            chunks = iter(lambda: request.stream.read(CHUNK), b"")
            body = read_capped_sync(chunks, state.settings.body_limit)
        path = request.script_root + request.path
        neutral = neutral_request(
            route,
            method=request.method,
            path=path,
            path_params=path_params,
            query=request.args.to_dict(),
            tag_filters=request.args.getlist("tag"),
            headers=request.headers.items(),
            body=body,
            user=request.environ.get("REMOTE_USER"),
        )
        response = serve_sync(state, route, neutral, path, multiprocess=_multiprocess())
        stream = sync_stream(state, response)
        # A media type with parameters (the dashboard's "; charset=utf-8") is the whole
        # header; to a bare one Werkzeug adds the charset itself where it belongs.
        whole = ";" in response.media_type
        return FlaskResponse(
            response.content() if stream is None else stream,
            status=response.status,
            headers=response.headers,
            mimetype=None if whole else response.media_type,
            content_type=response.media_type if whole else None,
        )

    view.__name__ = f"resonate_{route.name}"
    return view


cli = AppGroup("resonate", help="Resonate durable functions.")


@cli.command("worker")
@click.option("--group", help="The worker group to serve (default: RESONATE_TARGET).")
def worker_command(group: str | None) -> None:
    """Run a worker with the app's exposed functions (needs a shared backend)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    state = _state(app)
    try:
        code = run_worker(
            state.runtime.functions, state.settings, group=group, wrap=within(app.app_context)
        )
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)
