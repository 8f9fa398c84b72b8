"""The :mod:`tests.support.clocked` functions served by each framework, behind one
small interface: ``post(path, body)`` and ``get(path)``, each ``(status, JSON)``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.django_app import setup

setup()

from django.test import Client as DjangoClient  # noqa: E402
from django.test import override_settings  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from flask import Flask  # noqa: E402

from resonate_web import Functions  # noqa: E402
from resonate_web.django import conf  # noqa: E402
from resonate_web.flask import Resonate as FlaskResonate  # noqa: E402
from tests.support import fastapi_app  # noqa: E402

FRAMEWORKS = ["fastapi", "flask", "django"]
PREFIX = "/resonate"


class Http:
    def __init__(
        self, post: Callable[[str, Any], tuple[int, Any]], get: Callable[[str], tuple[int, Any]]
    ) -> None:
        self.post, self.get = post, get

    def start(self, function: str, id: str, *args: Any) -> dict[str, Any]:
        status, doc = self.post(f"{PREFIX}/functions/{function}?id={id}", {"args": list(args)})
        assert status in (200, 201, 202), (status, doc)
        return dict(doc)

    def status(self, id: str) -> dict[str, Any]:
        status, doc = self.get(f"{PREFIX}/invocations/{id}")
        assert status == 200, (status, doc)
        return dict(doc)


@contextmanager
def served(framework: str, functions: Functions, spec: str, **settings: Any) -> Iterator[Http]:
    """``functions`` served by ``framework``'s own test client (``spec``: where Django
    imports them from, ``module:attribute``)."""
    if framework == "fastapi":
        with TestClient(fastapi_app.create_app(functions, **settings)) as client:
            yield Http(
                lambda path, body: _fastapi(client.post(path, json=body)),
                lambda path: _fastapi(client.get(path)),
            )
    elif framework == "flask":
        app = Flask(__name__)
        app.config.update({f"RESONATE_{k.upper()}": v for k, v in settings.items()})
        FlaskResonate(functions=functions).init_app(app)
        flask_client = app.test_client()
        yield Http(
            lambda path, body: _flask(flask_client.post(path, json=body)),
            lambda path: _flask(flask_client.get(path)),
        )
    else:
        config = {"FUNCTIONS": [spec], **{k.upper(): v for k, v in settings.items()}}
        with override_settings(RESONATE=config):
            django_client = DjangoClient()
            try:
                yield Http(
                    lambda path, body: _django(
                        django_client.post(
                            path, data=json.dumps(body), content_type="application/json"
                        )
                    ),
                    lambda path: _django(django_client.get(path)),
                )
            finally:
                conf.reset()


def _fastapi(response: Any) -> tuple[int, Any]:
    return response.status_code, response.json()


def _flask(response: Any) -> tuple[int, Any]:
    return response.status_code, response.get_json()


def _django(response: Any) -> tuple[int, Any]:
    return response.status_code, json.loads(response.content)
