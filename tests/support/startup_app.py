"""An app whose one function ticks every second, for the start-up tests (no tests here).

``beat`` appends ``<pid> <tick id>`` to ``$TEST_TICKLOG``. The Flask app
serving it is ``tests.support.startup_flask:app``, the Django project
``tests.support.startup_django`` (apart, so that a server of one does not also
start the other).
"""

from __future__ import annotations

import os

from resonate.context import Context

from resonate_web import Functions
from resonate_web._core import cron

cron._allow_seconds(True)

functions = Functions()


@functions.expose(schedule="* * * * * *")
def beat(ctx: Context) -> str:
    path = os.environ.get("TEST_TICKLOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {ctx.info.id}\n".encode())
        finally:
            os.close(fd)
    return "beat"
