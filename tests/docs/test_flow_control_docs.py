"""The Python examples of docs/flow-control.md run as written: the FastAPI and Flask
apps start, describe their limits, and enforce them (a third withdrawal from one
account within a minute is refused; the operators' override replaces a limit)."""

from __future__ import annotations

import re
import sys
import types
import uuid
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "flow-control.md"


def snippet(heading: str) -> str:
    text = DOC.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, f"no Python example under {heading}"
    return str(blocks[0])


def module(name: str, source: str) -> dict[str, Any]:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    exec(compile(source, f"{DOC}:{name}", "exec"), mod.__dict__)
    return mod.__dict__


def test_the_fastapi_example_enforces_its_limits() -> None:
    from fastapi.testclient import TestClient

    ns = module(f"flow_doc_fastapi_{uuid.uuid4().hex[:6]}", snippet("FastAPI"))
    with TestClient(ns["app"]) as client:
        listed = {
            f["name"]: f.get("flow") for f in client.get("/resonate/functions").json()["functions"]
        }
        assert listed["export"] == {"concurrency": {"limit": 2, "key": "customer"}}
        assert listed["charge"]["rate"]["period"] == 60
        assert listed["reindex"]["debounce"] == {"period": 30, "key": "index"}
        started = client.post(
            "/resonate/functions/export",
            params={"wait": 10},
            json={"args": ["acme", "q3"], "priority": 10},
        )
        assert started.json()["result"] == "s3://exports/acme/q3.csv"
        bad = client.post(
            "/resonate/functions/export", json={"args": ["acme", "q3"], "priority": "high"}
        )
        assert bad.status_code == 400 and "priority" in bad.json()["detail"]


def test_the_flask_example_refuses_and_takes_the_override() -> None:
    ns = module(f"flow_doc_flask_{uuid.uuid4().hex[:6]}", snippet("Flask"))
    client = ns["app"].test_client()
    listed = {
        f["name"]: f.get("flow") for f in client.get("/resonate/functions").get_json()["functions"]
    }
    assert listed["rebuild_search"] == {"concurrency": {"limit": 2, "key": None}}
    account = f"a-{uuid.uuid4().hex[:6]}"
    answers = [
        client.post("/resonate/functions/withdraw", json={"args": [account, 100]}) for _ in range(3)
    ]
    assert all(a.status_code in (200, 202) for a in answers[:2]), answers
    refused = answers[2]
    assert refused.status_code == 429
    assert refused.get_json()["type"].endswith(":rate-limited")
    assert int(refused.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    "limits",
    [
        '{"export": {"concurrency": 0}}',
        '{"export": {"speed": 1}}',
        '{"export": {"rate": {"limit": 1}}}',
    ],
)
def test_a_bad_override_is_a_configuration_error(limits: str) -> None:
    from resonate_web import ConfigurationError, Settings

    with pytest.raises(ConfigurationError, match="LIMITS"):
        Settings.load(environ={"RESONATE_LIMITS": limits})
