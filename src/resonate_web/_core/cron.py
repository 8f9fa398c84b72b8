"""Cron expressions: which ones every backend reads alike, and when they match.

Pure: no I/O, no backend, no clock of its own (every function takes the time it
counts from). Five fields in UTC, in the syntax the Resonate server,
resonate-pg and croniter all understand (numbers, ``*``, ranges, steps, lists):
:func:`validate_cron` refuses anything else before it reaches a backend.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from resonate_web.problems import Problem

#: How many upcoming tick times a schedule's document shows.
NEXT_RUNS = 5
#: How many of the latest ticks a schedule's document shows.
RECENT = 10

#: Name, lowest and highest value of each field, in order.
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
#: croniter's sixth field (seconds, last), optional only in this project's own
#: tests (see :func:`_allow_seconds`): the backends that fire schedules
#: themselves do not read it the same way, or at all.
_SECONDS = ("second", 0, 59)
_second_crons = False
_PART_RE = re.compile(r"(\*|\d{1,2}(?:-\d{1,2})?)(?:/(\d{1,2}))?")


def _allow_seconds(allowed: bool) -> None:
    """Test-only: accept a sixth cron field, seconds (croniter's order: last)."""
    global _second_crons
    _second_crons = allowed


# ── cron ──────────────────────────────────────────────────────────────────


def _invalid(cron: str, why: str) -> Problem:
    return Problem("invalid-cron", f"cron {cron!r}: {why}")


def validate_cron(cron: Any) -> str:
    """``cron`` with its fields single-spaced, or a 400 ``invalid-cron`` problem.

    Five fields (minute, hour, day of month, month, day of week; 0 is Sunday),
    evaluated in UTC. Each field is ``*``, a number, a range ``a-b``, any of
    those with a step ``/n``, or a comma-separated list of them: what the
    Resonate server, resonate-pg and croniter all read the same way (names
    such as ``MON``, ``L``, ``#``, ``?``, ``H`` and ``@hourly`` are not).
    """
    if not isinstance(cron, str):
        raise Problem("invalid-cron", "'cron' must be a string such as \"0 * * * *\"")
    fields = cron.split()
    specs = (*_FIELDS, _SECONDS) if _second_crons and len(fields) == 6 else _FIELDS
    if len(fields) != len(specs):
        raise _invalid(
            cron,
            "a cron expression has five fields (minute, hour, day of month, month, "
            f"day of week), evaluated in UTC; this one has {len(fields)}",
        )
    for text, (name, low, high) in zip(fields, specs, strict=True):
        for part in text.split(","):
            match = _PART_RE.fullmatch(part)
            if match is None:
                raise _invalid(
                    cron,
                    f"the {name} field {text!r} is not numbers, '*', ranges 'a-b', steps "
                    "'/n' and lists 'a,b' (names, L, #, ?, H and @macros are not portable)",
                )
            values = [int(n) for n in match.group(1).split("-") if n != "*"]
            if any(not low <= v <= high for v in values):
                raise _invalid(cron, f"the {name} field takes {low}-{high}, not {text!r}")
            if len(values) == 2 and values[0] > values[1]:
                raise _invalid(cron, f"the range {match.group(1)!r} runs backwards")
            if match.group(2) is not None and int(match.group(2)) == 0:
                raise _invalid(cron, f"a step of 0 in {text!r}")
    normalized = " ".join(fields)
    if not croniter.is_valid(normalized):
        raise _invalid(cron, "croniter cannot read it")
    return normalized


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def next_after(cron: str, after: int) -> int:
    """The first time ``cron`` matches strictly after ``after`` (unix ms, UTC)."""
    return _ms(croniter(cron, _at(after)).get_next(datetime))


def next_runs(cron: str, after: int, count: int = NEXT_RUNS) -> list[int]:
    """The next ``count`` times ``cron`` matches after ``after`` (unix ms)."""
    it = croniter(cron, _at(after))
    return [_ms(it.get_next(datetime)) for _ in range(count)]


def previous_runs(cron: str, until: int, since: int, count: int = RECENT) -> list[int]:
    """Up to ``count`` times ``cron`` matched in ``(since, until]``, newest first."""
    it = croniter(cron, _at(until + 1))
    found: list[int] = []
    while len(found) < count:
        at = _ms(it.get_prev(datetime))
        if at <= since:
            break
        found.append(at)
    return found


def tick_id(template: str, schedule_id: str, at: int) -> str:
    """A tick's promise id, as the Resonate server expands the template."""
    return template.replace("{{.id}}", schedule_id).replace("{{.timestamp}}", str(at))


def declarations(name: str, schedule: str | Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``(id, cron)`` of each schedule ``expose(schedule=...)`` declares: the id is the
    function's name for one cron given as a string, ``name.1``, ``name.2``, ... for
    a list (in its order). Raises ``ValueError`` for a cron :func:`validate_cron` refuses."""
    crons = [schedule] if isinstance(schedule, str) else list(schedule)
    ids = [name] if isinstance(schedule, str) else [f"{name}.{n}" for n in range(1, len(crons) + 1)]
    try:
        return tuple((id, validate_cron(cron)) for id, cron in zip(ids, crons, strict=True))
    except Problem as problem:
        raise ValueError(f"{name!r}: schedule={schedule!r}: {problem.detail}") from None
