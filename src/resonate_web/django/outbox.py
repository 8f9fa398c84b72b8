"""Starts that survive the commit: an outbox in the application's own database.

Inside ``transaction.atomic()``, :func:`resonate_web.django.dispatch` and a
``django.tasks`` task's ``enqueue()`` write the start as a
:class:`~resonate_web.django.models.PendingStart` row, in the same transaction:
a rollback leaves nothing to start. After the commit the start is sent and the
row deleted. If the backend is down, or the process dies right after the
commit, the row stays, and a sweeper sends it later: every web process that
ran the runtime and every ``manage.py resonate_worker`` sweeps every
``RESONATE["OUTBOX_INTERVAL"]`` seconds (default 5) until the backend has it.
The id is chosen when the row is written, so sending it twice (after a crash
between the send and the delete, or by two sweepers at once) is a replay on
the backend: the invocation runs once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Any

from django.db import (  # type: ignore[import-untyped]
    DatabaseError,
    close_old_connections,
    connections,
    transaction,
)

from resonate_web._core.exposure import Exposed
from resonate_web._inprocess import Hosted
from resonate_web.django import conf
from resonate_web.problems import Problem

logger = logging.getLogger("resonate_web")

#: Seconds between two sweeps of the outbox, unless ``RESONATE["OUTBOX_INTERVAL"]``.
#: Rows one sweep sends at most.
BATCH = 100


def _model() -> Any:
    from resonate_web.django.models import PendingStart

    return PendingStart


def record(
    st: Hosted,
    exposed: Exposed,
    id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    tags: dict[str, str] | None = None,
    priority: int | None = None,
    using: str | None = None,
) -> None:
    """Write the start of ``exposed`` as ``id`` into the outbox (in the current
    transaction of database ``using``) and send it once that commits."""
    _model().objects.using(using).create(
        id=id,
        function=exposed.name,
        internal=exposed.internal,
        target=exposed.target or "",
        args=args,
        kwargs=kwargs,
        tags=tags or {},
        priority=priority,
    )
    transaction.on_commit(lambda: send_now(st, id, using), using=using)


def send_now(st: Hosted, id: str, using: str | None = None) -> bool:
    """Send the pending start ``id``; whether the backend has it now. Never raises:
    a start the backend did not take stays in the outbox for the sweeper."""
    row = _model().objects.using(using).filter(pk=id).first()
    if row is None:
        return True  # sent already, by this process or a sweeper
    sent = _send(st, row, using)
    if not sent:
        ensure_sweeper(st)
    return sent


def _send(st: Hosted, row: Any, using: str | None) -> bool:
    try:
        runtime = st.runtime
        exposed = runtime.internal(row.function) if row.internal else runtime.function(row.function)
        if row.target and exposed.mode == "dispatch":
            exposed = dataclasses.replace(exposed, target=row.target)
        call = st.gateway.begin(
            exposed,
            row.id,
            list(row.args),
            dict(row.kwargs),
            tags=dict(row.tags) or None,
            priority=row.priority,
        )
        st.portal.call(call)
    except Problem as problem:
        if problem.status < 500:
            # Never startable (the function is gone, the id is taken by another
            # call): resending would not help.
            logger.error(
                "resonate-web: dropping the pending start of %s (invocation %s): %s",
                row.function,
                row.id,
                problem.detail,
            )
            _model().objects.using(using).filter(pk=row.pk).delete()
            return False
        return _failed(row, using, f"{problem.slug}: {problem.detail}")
    except Exception as exc:
        return _failed(row, using, f"{type(exc).__name__}: {exc}")
    _model().objects.using(using).filter(pk=row.pk).delete()
    return True


def _failed(row: Any, using: str | None, error: str) -> bool:
    # The first failure and every tenth after it: a backend down for an hour
    # does not fill the log.
    log = logger.warning if row.attempts % 10 == 0 else logger.debug
    log(
        "resonate-web: the start of %s (invocation %s) was not sent (%s); "
        "it stays in the outbox and is sent again",
        row.function,
        row.id,
        error,
    )
    _model().objects.using(using).filter(pk=row.pk).update(
        attempts=row.attempts + 1, last_error=error[:2000]
    )
    return False


def sweep(st: Hosted, using: str | None = None) -> int:
    """Send what the outbox of database ``using`` holds; how many starts were sent."""
    sent = 0
    for row in list(_model().objects.using(using).all()[:BATCH]):
        if _send(st, row, using):
            sent += 1
    return sent


class Sweeper:
    """A daemon thread sweeping the outbox every ``interval`` seconds for one runtime."""

    def __init__(self, st: Hosted, interval: float) -> None:
        self.state = st
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resonate-web-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            # Every database: dispatch(using=...) writes the outbox of the one
            # whose transaction it joins.
            for alias in connections:
                if not _may_hold_rows(alias):
                    continue
                try:
                    sent = sweep(self.state, alias)
                    if sent:
                        logger.info(
                            "resonate-web: sent %d pending start(s) from the outbox of %r",
                            sent,
                            alias,
                        )
                except DatabaseError as exc:  # no table (not migrated), database down
                    logger.debug("resonate-web: the outbox sweep of %r failed: %s", alias, exc)
                except Exception:  # pragma: no cover - a sweep never ends the thread
                    logger.exception("resonate-web: the outbox sweep failed")
            close_old_connections()


def _may_hold_rows(alias: str) -> bool:
    """Whether database ``alias`` can hold an outbox: not the dummy backend, and not a
    SQLite file that does not exist yet (sweeping must not create it)."""
    db = connections.settings[alias]
    engine = str(db.get("ENGINE", ""))
    if engine.endswith(".dummy") or not engine:
        return False
    if engine.endswith("sqlite3"):
        name = str(db.get("NAME") or "")
        return name.startswith("file:") or name == ":memory:" or os.path.exists(name)
    return True


_lock = threading.Lock()
_sweeper: Sweeper | None = None


def ensure_sweeper(st: Hosted, interval: float | None = None) -> Sweeper:
    """The sweeper of runtime ``st``, started if it is not running (one per process)."""
    global _sweeper
    with _lock:
        if _sweeper is not None and _sweeper.state is st:
            return _sweeper
        old, _sweeper = _sweeper, None
    if old is not None:
        old.stop()
    if interval is None:
        interval = conf.outbox_interval()
    sweeper = Sweeper(st, interval)
    with _lock:
        if _sweeper is not None:
            return _sweeper
        _sweeper = sweeper
    sweeper.start()
    return sweeper


def stop_sweeper() -> None:
    """Stop this process's sweeper (the runtime it sends with is stopping)."""
    global _sweeper
    with _lock:
        old, _sweeper = _sweeper, None
    if old is not None:
        old.stop()
