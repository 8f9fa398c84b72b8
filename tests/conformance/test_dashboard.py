"""The dashboard's routes: ``/ui`` and its files, and the live feed ``/events``.

Off by default; with ``ui`` on every adapter serves the page and its files as
they are (not as JSON). The feed is read on the real servers, where a stream
that never ends can be read a frame at a time.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import httpx
import pytest

from tests.conformance.helpers import P, assert_problem, sse_events
from tests.support.adapters import ADAPTERS

REAL_SERVERS = ("fastapi-uvicorn", "flask-gunicorn", "django-gunicorn", "django-uvicorn")


def test_off_by_default(client: httpx.Client) -> None:
    for path in ("/ui", "/ui/app.js", "/events"):
        assert_problem(client.get(P + path), 404, "not-found")


@pytest.mark.parametrize("adapter", ["fastapi", "flask", "django"])
def test_page_and_files_as_they_are(adapter: str) -> None:
    with ADAPTERS[adapter](ui=True) as client:
        page = client.get(f"{P}/ui")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert f'src="{P}/ui/app.js"' in page.text
        assert '"prefix":"/resonate"'.replace('"', "&quot;") in page.text
        script = client.get(f"{P}/ui/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert "sessionStorage" in script.text and not script.text.startswith('"')
        style = client.get(f"{P}/ui/app.css")
        assert style.headers["content-type"].startswith("text/css")
        assert_problem(client.get(f"{P}/ui/secrets.py"), 404, "not-found")
        assert client.get(f"{P}/ui/..%2Fgateway.py").status_code == 404


@pytest.mark.parametrize("adapter", REAL_SERVERS)
def test_feed_pushes_invocations_as_they_start_and_settle(adapter: str, uid: str) -> None:
    with ADAPTERS[adapter](ui=True) as client:
        base = str(client.base_url)
        frames: list[tuple[str, Any]] = []
        subscribed = threading.Event()
        done = threading.Event()

        def read() -> None:
            text = ""
            with (
                contextlib.suppress(httpx.HTTPError),
                httpx.stream("GET", f"{base}{P}/events", timeout=60) as response,
            ):
                assert response.headers["content-type"].startswith("text/event-stream")
                for chunk in response.iter_text():
                    subscribed.set()
                    text += chunk
                    frames[:] = sse_events(text.rsplit("\n\n", 1)[0] + "\n\n")
                    if any(doc["id"] == uid and doc["status"] != "pending" for _, doc in frames):
                        done.set()
                        return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert subscribed.wait(30)
        response = client.post(
            f"{P}/functions/slow", params={"id": uid}, json={"args": [0.3, "fin"]}
        )
        assert response.status_code == 202
        assert done.wait(60), frames
        ours = [doc for event, doc in frames if event == "invocation" and doc["id"] == uid]
        assert [doc["status"] for doc in ours] == ["pending", "resolved"]
        assert ours[-1]["result"] == "fin"
