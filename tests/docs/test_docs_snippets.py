"""The Python snippets of the client and human-in-the-loop guides, run as written
against the example gateway under uvicorn (``BASE_URL`` is its address)."""

from __future__ import annotations

import re

import pytest

from tests.support import procs

EXAMPLE = procs.ROOT / "examples" / "gateway_worker"
DOCS = ["client.md", "human-in-the-loop.md"]


def snippets() -> list[tuple[str, int, str]]:
    found = []
    for name in DOCS:
        text = (procs.ROOT / "docs" / name).read_text()
        for n, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            if "resonate_web.client" in block:  # the ones a reader runs from outside
                found.append((name, n, block))
    return found


@pytest.fixture(scope="module")
def base_url() -> str:
    with procs.uvicorn("gateway_fastapi:app", cwd=EXAMPLE) as base:
        yield base


@pytest.mark.multiprocess
@pytest.mark.parametrize(("doc", "n", "code"), snippets(), ids=lambda v: str(v)[:20])
def test_the_snippet_runs(base_url: str, doc: str, n: int, code: str) -> None:
    exec(compile(code, f"docs/{doc}#{n}", "exec"), {"BASE_URL": base_url})
