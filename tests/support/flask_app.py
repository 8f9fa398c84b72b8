"""The Flask app the tests serve (in process, and under a real gunicorn)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from resonate.context import Context

from resonate_web.flask import Resonate
from tests.support.functions import build

resonate = Resonate(functions=build())


@resonate.expose
def app_config(ctx: Context, key: str) -> str:
    """Where it runs, with an app context: ``<app name>:<config[key]>``."""
    return f"{current_app.name}:{current_app.config.get(key)}"


def create_app(**settings: Any) -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env()
    app.config.update({f"RESONATE_{name.upper()}": value for name, value in settings.items()})
    resonate.init_app(app)
    return app


app = create_app()
