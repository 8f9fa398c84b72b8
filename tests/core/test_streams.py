"""Processes on an HTTP backend keep hearing from it for as long as they run.

resonate-sdk 0.8.1's event stream ends for good when aiohttp's default 300-s
total timeout fires (its reconnect loop catches only ``aiohttp.ClientError``):
the process then hears of no work and no settle. resonate-web's stream has no
total timeout and reconnects whatever ended it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import httpx
import pytest
from resonate.resonate import Resonate
from resonate.types import Value

from resonate_web._core import sdk as _sdk
from resonate_web._core.runtime import ConnectionWatch
from tests.support import procs

pytestmark = pytest.mark.multiprocess


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1200):  # a minute
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the condition did not come true")


async def test_a_stream_ended_by_a_timeout_reconnects_and_a_waiting_handle_still_wakes(
    tmp_path: Path,
) -> None:
    """The stream here times out after 1 s (as the SDK's does after 300 s) and the
    client's listener refresh is off, so only a push over a reconnected stream can
    wake the handle."""
    with procs.dev_server(log=tmp_path / "dev.log") as url:
        pid, group = uuid.uuid4().hex, "streams"
        stream = _sdk.event_stream(
            url, pid=pid, group=group, auth=None, timeout=aiohttp.ClientTimeout(total=1)
        )
        client = Resonate(
            network=_sdk.http_connection(url, auth=None, backoff=ConnectionWatch(url)),
            sources=[stream],
            pid=pid,
            group=group,
            env={},
            subscription_refresh_secs=0,
            autostart=False,
        )
        _sdk.attach_stream(client)
        client.start()
        try:
            id = f"stream-{uuid.uuid4().hex[:8]}"
            await client.promises.create(id, int(time.time() * 1000) + 600_000, Value(), {})
            handle = await client.get(id)
            # ended by its timeout twice, and back each time
            await until(lambda: stream.connections >= 3)  # type: ignore[attr-defined]
            await client.promises.resolve(id, Value(data="woken"))
            async with asyncio.timeout(60):
                assert await handle.result() == "woken"
            await until(lambda: procs.streams(url).get(group, 0) == 1)
        finally:
            await client.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_gateway_and_a_worker_idle_past_300_s_still_serve(tmp_path: Path) -> None:
    """Past the SDK's 300-s stream timeout, a new invocation reaches the worker and its
    long-poll answers."""
    app = "tests.support.distributed_app"
    with procs.dev_server(log=tmp_path / "dev.log") as url:
        worker = procs.start_worker(app, url, log=tmp_path / "worker.log")
        try:
            with procs.gateway(f"{app}:app", url, log=tmp_path / "gateway.log") as (base, _):
                procs.wait_streams(url, "gateway", 1)
                time.sleep(310)
                assert procs.streams(url) == {"gateway": 1, "workers": 1}
                id = f"idle-{uuid.uuid4().hex[:8]}"
                resp = httpx.post(
                    f"{base}/resonate/functions/add",
                    params={"id": id, "wait": "30"},
                    json={"args": [20, 22]},
                    timeout=40,
                )
                assert resp.json()["status"] == "resolved", resp.text
                assert resp.json()["result"] == 42
        finally:
            procs.stop(worker)
