from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import ConfigDict

from resonate_web.models import StatusDocument

P = "/resonate"
JSON_HEADERS = {"content-type": "application/json"}


class _Strict(StatusDocument):
    model_config = ConfigDict(extra="forbid")


def validated(doc: Any) -> Any:
    """``doc`` after checking it against the documented StatusDocument model (no extra
    member, every type as documented): every status document the suite sees goes here."""
    _Strict.model_validate(doc)
    return doc


def checked(response: Any) -> Any:
    """``response``, its body validated when it is a status document (200/202 JSON)."""
    if response.status_code in (200, 202) and response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        validated(response.json())
    return response


def start(
    client: httpx.Client,
    name: str,
    body: Any = None,
    *,
    wait: float | None = None,
    id: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    params: dict[str, str] = {}
    if wait is not None:
        params["wait"] = str(wait)
    if id is not None:
        params["id"] = id
    content = b"" if body is None else json.dumps(body).encode()
    return checked(
        client.post(
            f"{P}/functions/{name}",
            params=params,
            content=content,
            headers={**JSON_HEADERS, **(headers or {})},
        )
    )


def status(client: httpx.Client, id: str, wait: float | None = None) -> httpx.Response:
    params = {"wait": str(wait)} if wait is not None else {}
    return checked(client.get(f"{P}/invocations/{id}", params=params))


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:resonate-web:problem:{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["instance"], str) and body["instance"].startswith(P)
    return body


def sse_events(text: str) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        data = json.loads(fields["data"])
        events.append((fields["event"], validated(data) if fields["event"] == "status" else data))
    return events
