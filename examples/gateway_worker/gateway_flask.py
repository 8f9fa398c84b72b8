"""The Flask gateway: ``gunicorn --threads 8 gateway_flask:app``.

(``flask --app gateway_flask run`` for development; ``flask --app gateway_flask
resonate worker`` runs a worker with the same functions.)

No ``RESONATE_URL``: every function runs inline on the embedded backend (one
process: keep gunicorn at ``-w 1`` and use threads).
``RESONATE_URL`` set: functions are dispatched to ``RESONATE_TARGET`` (``workers``),
and any number of gunicorn workers may serve.
"""

from __future__ import annotations

from flask import Flask
from functions import functions

from resonate_web.flask import Resonate

# ui=True: the dashboard at /resonate/ui.
resonate = Resonate(functions=functions, ui=True)


def create_app() -> Flask:
    app = Flask("resonate-web example")
    app.config.from_prefixed_env()
    resonate.init_app(app)  # also: a Problem raised in a view answers as problem+json

    @app.get("/hello/<name>")
    def hello(name: str) -> dict[str, object]:
        """A view of your own, starting a durable function through the client."""
        handle = resonate.client.run(f"hello-{name}", "add", len(name), 1)
        return {"id": handle.id, "result": handle.result(timeout=30)}

    return app


app = create_app()
