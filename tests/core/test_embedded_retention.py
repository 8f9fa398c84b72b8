"""The embedded backend forgets settled invocations past its retention (an age and a
count), with every step of theirs, and says so when one is asked for."""

from __future__ import annotations

import time

from fastapi import FastAPI
from fastapi.testclient import TestClient

from resonate_web import Settings
from resonate_web.fastapi import ResonateRouter
from tests.support.functions import build

P = "/resonate"


def _app(**settings: object) -> tuple[FastAPI, ResonateRouter]:
    router = ResonateRouter(build(), settings=Settings.load(environ={}, **settings))
    app = FastAPI()
    app.include_router(router)
    return app, router


def test_only_the_newest_settled_invocations_are_kept() -> None:
    app, router = _app(embedded_keep=3)
    with TestClient(app) as client:
        client.post(f"{P}/functions/slow?id=still-running", json={"args": [60, "x"]})
        for n in range(5):
            done = client.post(
                f"{P}/functions/countdown?id=cd-{n}&wait=10", json={"args": [1, 0.01]}
            )
            assert done.json()["status"] == "resolved"
        assert router.runtime.prune_now() == 2
        for n in (0, 1):
            gone = client.get(f"{P}/invocations/cd-{n}")
            assert gone.status_code == 404
            assert "the embedded backend keeps settled invocations" in gone.json()["detail"]
            assert client.get(f"{P}/invocations/cd-{n}/tree").status_code == 404
        for n in (2, 3, 4):
            assert client.get(f"{P}/invocations/cd-{n}").json()["status"] == "resolved"
            assert len(client.get(f"{P}/invocations/cd-{n}/tree").json()["children"]) == 1
        assert client.get(f"{P}/invocations/still-running").json()["status"] == "pending"
        assert router.runtime.prune_now() == 0


def test_settled_invocations_older_than_the_retention_are_forgotten() -> None:
    app, _ = _app(embedded_retention=0.2)
    with TestClient(app) as client:
        assert (
            client.post(f"{P}/functions/add?id=old&wait=10", json={"args": [1, 2]}).status_code
            == 200
        )
        for _ in range(600):  # the runtime prunes on its own, every retention / 4
            if client.get(f"{P}/invocations/old").status_code == 404:
                break
            time.sleep(0.02)
        assert client.get(f"{P}/invocations/old").status_code == 404
        # The same id is free again: a new invocation, not a replay of the forgotten one.
        again = client.post(f"{P}/functions/add?id=old&wait=10", json={"args": [2, 2]})
        assert again.status_code == 200 and again.json()["result"] == 4
