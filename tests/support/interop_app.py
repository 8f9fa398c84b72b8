"""What the interop tests run (no tests here): one FastAPI gateway dispatching to a
TypeScript worker group and a Python worker group.

Gateway: ``uvicorn tests.support.interop_app:app`` with ``RESONATE_URL`` set.
Python workers: ``resonate-web worker tests.support.interop_app --group py-workers``.
The TypeScript workers are ``tests/interop/ts-worker/worker.js ts-workers``.

The TypeScript functions are exposed by name, with a stub for their signature.
A TypeScript function takes positional arguments only; the gateway sends every
parameter it can by position, so plain stubs do.
"""

from __future__ import annotations

from fastapi import FastAPI
from resonate.context import Context
from resonate.retry import Never

from resonate_web import Functions
from resonate_web.fastapi import ResonateRouter

TS_GROUP = "ts-workers"
PY_GROUP = "py-workers"

functions = Functions()


# ── served by the TypeScript workers (tests/interop/ts-worker/worker.js) ─────


def _add(ctx: Context, a: int, b: int) -> int: ...
def _slow(ctx: Context, seconds: float, tag: str) -> str: ...
def _fail(ctx: Context, message: str) -> None: ...
def _countdown(ctx: Context, n: int, delay: float) -> int: ...
def _whoami(ctx: Context) -> str: ...


for _name, _stub in (
    ("add", _add),
    ("slow", _slow),
    ("fail", _fail),
    ("countdown", _countdown),
    ("whoami", _whoami),
):
    functions.expose_remote(_name, target=TS_GROUP, signature=_stub)


# ── served by the Python workers ─────────────────────────────────────────────


@functions.expose(target=PY_GROUP)
def py_whoami(ctx: Context) -> str:
    return f"python:{PY_GROUP}"


@functions.expose(target=PY_GROUP)
def py_mul(ctx: Context, a: int, b: int) -> int:
    return a * b


@functions.expose(target=PY_GROUP, retry_policy=Never())
def py_fail(ctx: Context, message: str) -> None:
    raise ValueError(message)


app = FastAPI()
app.include_router(ResonateRouter(functions))
