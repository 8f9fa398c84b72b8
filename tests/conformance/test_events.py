"""GET /invocations/{id}/events: server-sent events."""

from __future__ import annotations

import httpx

from tests.conformance.helpers import P, assert_problem, sse_events, start


def test_settled_invocation_sends_one_frame_and_closes(client: httpx.Client) -> None:
    doc = start(client, "add", {"args": [2, 2]}, wait=5).json()
    response = client.get(f"{P}/invocations/{doc['id']}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert sse_events(response.text) == [("status", doc)]


def test_pending_invocation_streams_until_settled(client: httpx.Client, uid: str) -> None:
    start(client, "slow", {"args": [0.5, "fin"]}, id=uid)
    with client.stream("GET", f"{P}/invocations/{uid}/events") as response:
        assert response.status_code == 200
        text = response.read().decode()
    events = sse_events(text)
    assert [e[0] for e in events] == ["status", "status"]
    assert events[0][1]["status"] == "pending"
    assert events[-1][1]["status"] == "resolved" and events[-1][1]["result"] == "fin"


def test_unknown_invocation_is_404(client: httpx.Client, uid: str) -> None:
    assert_problem(client.get(f"{P}/invocations/{uid}/events"), 404, "not-found")
