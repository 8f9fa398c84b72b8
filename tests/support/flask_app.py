"""The Flask app the tests serve (in process, and under a real gunicorn)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from resonate_web.flask import Resonate
from tests.support.functions import build

resonate = Resonate(functions=build())


def create_app(**settings: Any) -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env()
    app.config.update({f"RESONATE_{name.upper()}": value for name, value in settings.items()})
    resonate.init_app(app)
    return app


app = create_app()
