"""Run a worker process: register the exposed functions, serve, drain on SIGTERM.

Every worker command (``resonate-web worker``, ``flask resonate worker``, the
Django ``resonate_worker`` management command) ends in :func:`run_worker`.

Draining: on the first SIGTERM or SIGINT the worker stops listening (no new
task reaches it; what was already routed to it moves to another member of the
group), lets the tasks it is running finish or reach a checkpoint (a durable
function suspends at ``ctx.sleep``, ``ctx.promise`` or a remote call) for up to
``shutdown_timeout`` seconds, then releases the leases of whatever still runs so
another worker takes it over at once, and exits 0. A second signal skips the
wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from resonate.error import ConnectorError, FunctionNotFoundError, ServerError
from resonate.resonate import Resonate

from resonate_web._core import sdk as _sdk
from resonate_web._core.exposure import Functions, registrations
from resonate_web._core.runtime import Runtime, Wrapper
from resonate_web.settings import ConfigurationError, Settings

logger = logging.getLogger("resonate_web.worker")

_PROBE_ID = "resonate-web-worker-probe"


def configure_logging(level: int | str = logging.INFO) -> None:
    """Log to stderr, unless the application configured logging already.

    The SDK's own per-request records show only at ``DEBUG``.
    """
    if logging.getLogger().handlers:
        return
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("resonate").setLevel(logging.WARNING)


async def _wait_for_backend(client: Resonate, settings: Settings) -> None:
    """Return once the backend answers a request (the SDK retries while it is down)."""
    probe = asyncio.ensure_future(_sdk.read_promise(client, _PROBE_ID))
    done, _ = await asyncio.wait({probe}, timeout=settings.backend_timeout)
    if not done:
        logger.warning("waiting for the Resonate backend at %s ...", settings.display_url)
    try:
        await probe
    except ServerError as exc:
        if exc.code != 404:
            raise
    except ConnectorError as exc:
        hint = ""
        if settings.backend == "postgres" and settings.url:
            from resonate_web._core.pgcheck import startup_problems

            # What `resonate-web pg check` would say (no schema, a role without rights).
            problems = await startup_problems(settings.url, settings.backend_timeout)
            hint = "".join(f"\n  {line}" for line in problems) or (
                " (is resonate-pg's schema, resonate.sql, applied to this database?)"
            )
        raise ConfigurationError(
            f"the backend at {settings.display_url} does not answer the Resonate protocol: "
            f"{exc}{hint}"
        ) from None


async def drain(client: Resonate, grace: float, hurry: asyncio.Event | None = None) -> None:
    """Stop taking tasks, let running ones finish for ``grace`` s, release the rest.

    The client itself is stopped afterwards by the caller.
    """
    await _sdk.stop_listening(client)
    deadline = time.monotonic() + grace
    pending: set[asyncio.Task[Any]] = set()
    hurried = asyncio.ensure_future((hurry or asyncio.Event()).wait())
    try:
        while True:
            pending = _sdk.running_tasks(client)
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0 or hurried.done():
                break
            logger.info("waiting for %d running task(s) to finish", len(pending))
            await asyncio.wait(
                {*pending, hurried}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
    finally:
        hurried.cancel()

    held = _sdk.held_tasks(client)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
    for task_id, version in held.items():
        try:
            await asyncio.wait_for(_sdk.release_task(client, task_id, version), 2.0)
            logger.info("released task %s (version %d) to another worker", task_id, version)
        except Exception as exc:
            logger.warning(
                "could not release task %s (%s); it moves on when its lease expires",
                task_id,
                exc,
            )


async def serve(
    functions: Functions,
    settings: Settings,
    *,
    group: str | None = None,
    wrap: Wrapper | None = None,
    stop: asyncio.Event | None = None,
    hurry: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve ``functions`` in ``group`` (default: the settings' target) until ``stop`` is set.

    Then drain (see the module documentation); ``hurry`` cuts the wait short.
    """
    if settings.backend == "embedded":
        raise ConfigurationError(
            "a worker needs a shared backend: set RESONATE_URL to a Resonate server "
            "(resonate-web dev for development) or a postgresql:// DSN"
        )
    group = group or settings.target
    names = sorted(exp.name for exp in registrations(functions))
    if not names:
        raise ConfigurationError("no exposed function has code here: nothing to serve")
    stop = stop or asyncio.Event()
    runtime = Runtime(settings, functions, wrap=wrap, group=group)
    hint = MissingFunctionHint(group, names)
    for name in SDK_LOGGERS:
        logging.getLogger(name).addFilter(hint)
    try:
        client = await runtime.start()
    except BaseException:
        for name in SDK_LOGGERS:
            logging.getLogger(name).removeFilter(hint)
        raise
    try:
        if not await _until_stopped(_wait_for_backend(client, settings), stop):
            logger.info("stopped before the backend answered")
            return
        logger.info(
            "worker ready: group=%s pid=%s os_pid=%d backend=%s lease_ttl=%gs functions=%s",
            group,
            _sdk.client_pid(client),
            os.getpid(),
            settings.display_url,
            settings.lease_ttl,
            ", ".join(names),
        )
        if on_ready:
            on_ready()
        await stop.wait()
        logger.info("worker draining (at most %gs)", settings.shutdown_timeout)
        await drain(client, settings.shutdown_timeout, hurry)
    finally:
        await runtime.stop()
        for name in SDK_LOGGERS:
            logging.getLogger(name).removeFilter(hint)
        logger.info("worker stopped")


#: The SDK's loggers that report a task whose function this process does not have.
SDK_LOGGERS = ("resonate.core", "resonate.resonate")


class MissingFunctionHint(logging.Filter):
    """Beside the SDK's ``FunctionNotFoundError`` (a task for a function this worker
    does not have), says once per function why that happens and what to change: the
    worker group is shared with another app's gateway on the same backend."""

    def __init__(self, group: str, names: list[str]) -> None:
        super().__init__()
        self.group = group
        self.names = names
        self.said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        missing = _not_found(record.exc_info[1] if record.exc_info else None)
        if missing is not None and missing.name not in self.said:
            self.said.add(missing.name)
            logger.warning(
                "resonate-web: this worker (group %r) was sent a task for %r, a function it "
                "does not have (it has: %s). Another app's gateway dispatches to group %r on "
                "this backend: give each app's workers a group of their own (resonate-web "
                "worker --group NAME here, RESONATE_TARGET=NAME or expose(..., target=NAME) "
                "on that app's gateway)",
                self.group,
                missing.name,
                ", ".join(self.names),
                self.group,
            )
        return True


def _not_found(exc: BaseException | None) -> FunctionNotFoundError | None:
    """The ``FunctionNotFoundError`` that ``exc`` is or was caused by, if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, FunctionNotFoundError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` is set first (then cancel it); True if it finished."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True


def run_worker(
    functions: Functions,
    settings: Settings,
    *,
    group: str | None = None,
    wrap: Wrapper | None = None,
) -> int:
    """Blocking entry point used by every worker command; returns the exit code.

    Serves until SIGTERM or SIGINT, then drains and returns 0.
    """
    configure_logging(os.environ.get("RESONATE_LOG_LEVEL", "INFO").upper())

    async def main() -> None:
        stop = asyncio.Event()
        hurry = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if stop.is_set():
                logger.info("second signal (%s): releasing running tasks now", sig.name)
                hurry.set()
            else:
                logger.info("%s received", sig.name)
                stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        await serve(functions, settings, group=group, wrap=wrap, stop=stop, hurry=hurry)

    asyncio.run(main())
    return 0
