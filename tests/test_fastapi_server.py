"""The FastAPI example under a real uvicorn process, as `make demo` serves it.

The real-server cases every adapter shares are in ``test_real_servers.py``."""

from __future__ import annotations

import httpx

from tests.support import procs


def test_the_demo_serves_the_readme_example() -> None:
    """What `make demo` runs, driven with the README's curl lines."""
    with procs.uvicorn(
        "gateway_fastapi:app", cwd=procs.ROOT / "examples" / "gateway_worker"
    ) as base:
        started = httpx.post(
            f"{base}/resonate/functions/add",
            content=b'{"args":[1,2]}',
            headers={"content-type": "application/json"},
        )
        assert started.status_code in (200, 202)
        doc = httpx.get(f"{base}/resonate/invocations/{started.json()['id']}?wait=5").json()
        assert doc["status"] == "resolved"
        assert doc["result"] == 3
        assert httpx.get(f"{base}/hello/ada").json() == {"id": "hello-ada", "result": 4}
