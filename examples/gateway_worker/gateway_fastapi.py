"""The FastAPI gateway: ``uvicorn gateway_fastapi:app``.

No ``RESONATE_URL``: every function runs inline on the embedded backend.
``RESONATE_URL`` set: functions are dispatched to ``RESONATE_TARGET`` (``workers``).
"""

from __future__ import annotations

from fastapi import FastAPI
from functions import functions

from resonate_web import Problem
from resonate_web.fastapi import ResonateDep, ResonateRouter, problem_handler, problem_responses

app = FastAPI(title="resonate-web example")
# A Problem the client raises in a handler of yours (a bad id, say) answers as
# problem+json, as the routes' own errors do, instead of a 500.
app.add_exception_handler(Problem, problem_handler)
# ui=True: the dashboard at /resonate/ui.
app.include_router(ResonateRouter(functions, ui=True))


# problem_responses: the problems it may answer, in the app's OpenAPI document.
@app.get("/hello/{name}", responses=problem_responses(400, 503))
async def hello(name: str, resonate: ResonateDep) -> dict[str, object]:
    """A handler of your own, starting a durable function through the injected client.

    It starts ``add`` exactly as ``POST /resonate/functions/add`` would: inline on the
    embedded backend, on a worker when ``RESONATE_URL`` is set.
    """
    handle = await resonate.run(f"hello-{name}", "add", len(name), 1)
    return {"id": handle.id, "result": await handle.result(timeout=30)}
