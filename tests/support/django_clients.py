"""The Django test project in process (WSGI) and under gunicorn and uvicorn.

Settings keyword arguments (``url=``, ``backend_timeout=``) become
``settings.RESONATE`` keys in process (through ``override_settings``, which also
gives each client a fresh runtime and stops it afterwards) and ``RESONATE_*``
variables for a server process (see ``tests.support.servers``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support import procs

SETTINGS_ENV = {"DJANGO_SETTINGS_MODULE": "tests.support.django_settings"}
WSGI_APP = "tests.support.django_wsgi:application"
ASGI_APP = "tests.support.django_asgi:application"


@contextmanager
def wsgi_client(**settings: Any) -> Iterator[httpx.Client]:
    """Django's WSGI handler in this process, behind ``httpx.WSGITransport``."""
    from tests.support.django_app import setup

    setup()
    from django.conf import settings as django_settings
    from django.core.wsgi import get_wsgi_application
    from django.test import override_settings

    resonate = {**django_settings.RESONATE, **{k.upper(): v for k, v in settings.items()}}
    with (
        override_settings(RESONATE=resonate),
        httpx.Client(
            transport=httpx.WSGITransport(app=get_wsgi_application()),
            base_url="http://testserver",
        ) as client,
    ):
        yield client


@contextmanager
def gunicorn(
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    ready_path: str = "/resonate/functions",
) -> Iterator[str]:
    """The test project under gunicorn's threaded workers; yields its URL."""
    with procs.gunicorn(
        WSGI_APP,
        workers=workers,
        threads=32,
        env={**SETTINGS_ENV, **(env or {})},
        log=log,
        ready_path=ready_path,
    ) as base:
        yield base


@contextmanager
def uvicorn(*, env: Mapping[str, str] | None = None, log: Path | None = None) -> Iterator[str]:
    """The test project under uvicorn (ASGI); yields its URL."""
    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(procs.BIN / "uvicorn"), ASGI_APP, "--host", "127.0.0.1", "--port", str(port)]
    with procs.process(argv, env={**SETTINGS_ENV, **(env or {})}, log=log) as proc:
        procs.wait_answer(f"{base}/resonate/functions", proc)
        yield base
