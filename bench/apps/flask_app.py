"""Flask: ``gunicorn -k gthread bench.apps.flask_app:resonate`` (the extension's
routes) or ``:by_hand`` (two hand-written views on the raw SDK)."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, request

from bench.apps import by_hand as hand
from examples.gateway_worker.functions import functions
from resonate_web.flask import Resonate

resonate = Flask("bench-resonate")
Resonate(functions=functions).init_app(resonate)

by_hand = Flask("bench-by-hand")
_loop: list[hand.LoopThread] = []
_lock = threading.Lock()


def _sdk() -> hand.LoopThread:
    with _lock:  # made in the worker process, after gunicorn forks
        if not _loop:
            _loop.append(hand.LoopThread())
    return _loop[0]


@by_hand.post("/add")
def add() -> dict[str, Any]:
    sdk = _sdk()
    body = request.get_json()
    return sdk.call(hand.start(sdk.resonate, request.args["id"], body["args"]))


@by_hand.get("/invocations/<id>")
def read(id: str) -> dict[str, Any]:
    sdk = _sdk()
    return sdk.call(hand.status(sdk.resonate, id))
