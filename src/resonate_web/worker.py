"""Run a worker process: register the exposed functions, serve, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Callable

from resonate_web.exposure import Functions
from resonate_web.runtime import Runtime, Wrapper
from resonate_web.settings import ConfigurationError, Settings

logger = logging.getLogger("resonate_web.worker")


def load_functions(spec: str) -> Functions:
    """Import ``module[:attr]`` and return its :class:`Functions` (default attr: the only one)."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Functions):
            raise ConfigurationError(f"{spec}: {attr!r} is not a resonate_web.Functions")
        return found
    candidates = [v for v in vars(module).values() if isinstance(v, Functions)]
    if len(candidates) != 1:
        raise ConfigurationError(
            f"{module_name}: found {len(candidates)} Functions objects; "
            f"name one as {module_name}:ATTR"
        )
    return candidates[0]


async def serve(
    functions: Functions,
    settings: Settings,
    *,
    group: str | None = None,
    wrap: Wrapper | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve ``functions`` in ``group`` (default: the settings' target) until ``stop`` is set."""
    if settings.backend == "embedded":
        raise ConfigurationError(
            "a worker needs a shared backend: set RESONATE_URL to a Resonate server "
            "(resonate-web dev for development) or a postgresql:// DSN"
        )
    stop = stop or asyncio.Event()
    runtime = Runtime(settings, functions, wrap=wrap, group=group or settings.target)
    await runtime.start()
    if on_ready:
        on_ready()
    logger.info("worker serving group %r", group or settings.target)
    try:
        await stop.wait()
    finally:
        logger.info("worker draining")
        await runtime.stop()


def run_worker(
    functions: Functions,
    settings: Settings,
    *,
    group: str | None = None,
    wrap: Wrapper | None = None,
) -> int:
    """Blocking entry point used by every worker command; returns the exit code."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(functions, settings, group=group, wrap=wrap, stop=stop)

    asyncio.run(main())
    return 0
