"""Django: settings, URLs and both handlers in one module.

``BENCH_APP=resonate`` serves ``resonate_web.django``'s routes; ``BENCH_APP=by_hand``
serves two hand-written views on the raw SDK (sync views on a loop thread under
WSGI, async views on the server's loop under ASGI)::

    DJANGO_SETTINGS_MODULE=bench.apps.django_app gunicorn bench.apps.django_app:wsgi
    DJANGO_SETTINGS_MODULE=bench.apps.django_app uvicorn bench.apps.django_app:asgi
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from resonate.resonate import Resonate

from bench.apps import by_hand as hand

APP = os.environ.get("BENCH_APP", "resonate")

SECRET_KEY = "bench: not a secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["resonate_web.django"] if APP == "resonate" else []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "bench.apps.django_app"
USE_TZ = True
RESONATE = {"FUNCTIONS": ["examples.gateway_worker.functions"]}

_lock = threading.Lock()
_loop: list[hand.LoopThread] = []
_client: list[Resonate] = []


def _thread() -> hand.LoopThread:
    with _lock:
        if not _loop:
            _loop.append(hand.LoopThread())
    return _loop[0]


def _on_loop() -> Resonate:
    if not _client:  # on the ASGI server's loop, the first request makes it
        _client.append(hand.client())
    return _client[0]


def _args(request: HttpRequest) -> tuple[str, list[int]]:
    return request.GET["id"], json.loads(request.body)["args"]


@csrf_exempt
def add_sync(request: HttpRequest) -> JsonResponse:
    sdk = _thread()
    doc: dict[str, Any] = sdk.call(hand.start(sdk.resonate, *_args(request)))
    return JsonResponse(doc)


def read_sync(request: HttpRequest, id: str) -> JsonResponse:
    sdk = _thread()
    doc: dict[str, Any] = sdk.call(hand.status(sdk.resonate, id))
    return JsonResponse(doc)


@csrf_exempt
async def add_async(request: HttpRequest) -> JsonResponse:
    return JsonResponse(await hand.start(_on_loop(), *_args(request)))


async def read_async(request: HttpRequest, id: str) -> JsonResponse:
    return JsonResponse(await hand.status(_on_loop(), id))


if APP == "resonate":
    urlpatterns = [path("resonate/", include("resonate_web.django.urls"))]
elif APP == "by_hand":
    urlpatterns = [path("add", add_sync), path("invocations/<str:id>", read_sync)]
else:  # by_hand_async
    urlpatterns = [path("add", add_async), path("invocations/<str:id>", read_async)]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.apps.django_app")


def __getattr__(name: str) -> Any:
    # The handlers are made on first use, once the settings module is importable.
    if name == "wsgi":
        from django.core.wsgi import get_wsgi_application

        return get_wsgi_application()
    if name == "asgi":
        if APP == "resonate":
            # The runtime on the server's loop (its lifespan), as docs/django.md says.
            from resonate_web.django.asgi import get_asgi_application
        else:
            from django.core.asgi import get_asgi_application

        return get_asgi_application()
    raise AttributeError(name)
