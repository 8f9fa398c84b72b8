"""When Flask's and Django's runtime starts: with the process that serves, else on first use.

A sync framework's runtime lives on its :class:`~resonate_web._core.runtime.Portal`'s
background loop. Started only on first use, a server would fire no schedule and
name no backend until a request came. So the adapters call :func:`autostart`
where the app is set up (Flask's ``init_app``, Django's ``AppConfig.ready``),
and it starts the runtime at once when this process is one that serves:

* a server program imported the app: gunicorn (each worker; with
  ``--preload`` the master, which only forks, starts it in every worker it
  forks instead), uvicorn, hypercorn, daphne, granian, waitress;
* or the adapter knows its own serving command (``flask run``,
  ``manage.py runserver``), in the process that serves rather than the
  autoreloader's parent, which only restarts it.

Anything else that imports the app (``manage.py migrate``, ``flask routes``, a
shell, a test suite) starts nothing, and the runtime starts on first use as
before. A server this does not recognise gets one line from the adapter's docs
(``resonate.start(app)``, ``resonate_web.django.start()``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from resonate_web._core.runtime import Portal

logger = logging.getLogger("resonate_web")

#: Programs that import an app to serve it: ``argv[0]``'s name, or the package
#: run with ``python -m``.
SERVERS = frozenset(
    {"gunicorn", "uvicorn", "hypercorn", "daphne", "granian", "waitress", "waitress-serve"}
)


def program() -> str:
    """The name of the program this process runs (``gunicorn``, ``manage.py``, ...)."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return argv0.parent.name if argv0.name == "__main__.py" else argv0.name


def gunicorn_master() -> bool:
    """Whether gunicorn's master (the arbiter, with ``--preload``) is setting up the app.

    A worker imports the app below gunicorn's worker code; the master below the
    arbiter alone. The master forks the workers and serves nothing itself.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith("gunicorn.workers"):
            return False
        if module == "gunicorn.arbiter":
            return True
        frame = frame.f_back
    return False


def autostart(portal: Callable[[], Portal], *, serving_command: bool = False) -> None:
    """Start the runtime of ``portal()`` now if this process serves (see the module).

    ``serving_command`` is the adapter's word that its own server command is
    loading the app in the process that serves. ``portal`` is called only then.
    A runtime that fails to start logs why (and starts on first use, or fails
    the request naming the cause, as without this).
    """
    if not (serving_command or program() in SERVERS):
        return
    try:
        hosted = portal()
    except Exception as exc:
        # The configuration is wrong: said now, and again by the framework's
        # checks and the first request, as without this.
        logger.error("resonate-web: the runtime cannot start with the process: %s", exc)
        return
    if gunicorn_master():
        hosted.start_in_forked_children()
    else:
        hosted.start_logged()
