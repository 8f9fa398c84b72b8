"""What a hand-written route does with the raw SDK, shared by the by-hand apps.

No resonate_web here: a plain ``Resonate`` on the SDK's in-memory backend, the
example's ``add`` registered as is. Sync frameworks reach it as a user would by
hand: one event loop in a thread, ``run_coroutine_threadsafe`` per call.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from resonate.context import Context
from resonate.resonate import Resonate


def add(ctx: Context, a: int, b: int) -> int:
    return a + b


def client() -> Resonate:
    """A started raw SDK client with ``add``; call on a running loop."""
    resonate = Resonate(env={})
    resonate.register(add, name="add")
    return resonate


async def start(resonate: Resonate, id: str, args: list[int]) -> dict[str, Any]:
    handle = resonate.run(id, "add", *args)
    return {"id": id, "status": "resolved", "result": await handle.result()}


async def status(resonate: Resonate, id: str) -> dict[str, Any]:
    record = await resonate.promises.get(id)
    return {"id": id, "status": record.state, "result": record.value.data}


class LoopThread:
    """An event loop in a daemon thread holding the SDK client (sync frameworks)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.resonate = self.call(self._client())

    @staticmethod
    async def _client() -> Resonate:
        return client()

    def call[T](self, coro: Any) -> T:
        result: T = asyncio.run_coroutine_threadsafe(coro, self.loop).result()
        return result
