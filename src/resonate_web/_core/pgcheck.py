"""``resonate-web pg check``: can this PostgreSQL database serve as a Resonate backend?

With resonate-pg the database *is* the Resonate server: every request is a call
of ``resonate.resonate_rpc``, every message an outbox row, and timers (durable
sleeps, lease expiry, retries, promise timeouts) advance only when something
calls ``resonate.process_timeouts()``: each ``PostgresConnection`` does, when
its role may; otherwise pg_cron must, on a schedule.

:func:`diagnose` looks, read-only and in one connection, at what that needs:

* the schema: ``resonate.sql`` from resonate-pg creates the ``resonate``
  schema, its tables and functions, and ``resonate.get_schema_version()``,
  which names the schema's version;
* the role: may it call the wire entrypoints (``resonate_rpc``,
  ``dequeue_execute``, ``dequeue_unblock``, granted to ``resonate_worker``),
  and may it call ``resonate.process_timeouts()`` itself;
* pg_cron, when the role may not: installed, and a job scheduled that calls
  ``resonate.process_timeouts()`` in this database.

Every line of a :class:`Report` shows the DSN with its password masked.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from resonate_web.settings import mask, mask_url, passwords

Level = Literal["ok", "info", "warn", "fail"]

SCHEMA = "resonate"
#: The wire entrypoints every process calls (granted to ``resonate_worker``).
WIRE = (
    "resonate.resonate_rpc(jsonb)",
    "resonate.dequeue_execute(text, integer)",
    "resonate.dequeue_unblock(text, integer)",
)
TIMERS = "resonate.process_timeouts()"
#: Objects whose absence means the schema is not (fully) installed.
TABLES = ("resonate.promises", "resonate.tasks", "resonate.outbox", "resonate.schedules")
FUNCTIONS = (*WIRE, TIMERS, "resonate.get_schema_version()")
MIN_SERVER = 160000  # resonate-pg asks for PostgreSQL 16+

INSTALL = (
    "install it once, as the database's owner with CREATEROLE or a superuser: "
    'psql "$DSN" -f resonate.sql (resonate.sql is published with resonate-pg, '
    "https://github.com/resonatehq/resonate-pg; DSN: this database's URL)"
)


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    text: str
    hints: tuple[str, ...] = ()


@dataclass
class Report:
    """What :func:`diagnose` found, in the order it looked."""

    dsn: str
    findings: list[Finding] = field(default_factory=list)
    secrets: tuple[str, ...] = ()

    def add(self, level: Level, topic: str, text: str, *hints: str) -> None:
        self.findings.append(Finding(level, topic, text, hints))

    @property
    def can_serve(self) -> bool:
        """No finding is a failure: processes on this database will work."""
        return bool(self.findings) and all(f.level != "fail" for f in self.findings)

    @property
    def schema_missing(self) -> bool:
        return any(f.topic == "schema" and f.level == "fail" for f in self.findings)

    def lines(self) -> list[str]:
        """The report as text, one finding a line (hints indented below), password masked."""
        out = [f"resonate-pg check of {mask_dsn(self.dsn)}"]
        for f in self.findings:
            out.append(f"{f.level.upper():<5} {f.topic}: {f.text}")
            out.extend(f"      -> {hint}" for hint in f.hints)
        verdict = "can" if self.can_serve else "cannot"
        out.append(f"=> this database {verdict} serve as a Resonate backend")
        return [mask(line, self.secrets) for line in out]

    def problems(self) -> list[str]:
        """Only what is wrong, with its hints: for a log line at start-up."""
        out: list[str] = []
        for f in self.findings:
            if f.level in ("fail", "warn"):
                out.append(f"{f.topic}: {f.text}")
                out.extend(f"  -> {hint}" for hint in f.hints)
        return [mask(line, self.secrets) for line in out]


# ── masking ─────────────────────────────────────────────────────────────────


def mask_dsn(dsn: str) -> str:
    """The DSN for display: user, host and database, the password masked."""
    return mask_url(dsn)


# ── the diagnosis ───────────────────────────────────────────────────────────


async def diagnose(dsn: str, within: float = 5.0) -> Report:
    """Look at the database ``dsn`` names; a :class:`Report`. Never raises for what it
    finds (an unreachable database is a finding); bounded by ``within`` seconds."""
    report = Report(dsn=dsn, secrets=passwords(dsn))
    try:
        import psycopg
    except ImportError:
        report.add(
            "fail",
            "connector",
            "psycopg is not installed",
            "pip install 'resonate-web[pg]' (resonate-pg brings psycopg)",
        )
        return report
    try:
        await asyncio.wait_for(_diagnose(report, dsn, max(2, math.ceil(within))), within)
    except TimeoutError:
        report.add(
            "fail",
            "connection",
            f"the database did not answer within {within:g}s",
            "check the host, port and network path, and that PostgreSQL is running",
        )
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())
        if not any(f.topic == "connection" for f in report.findings):
            report.add("fail", "connection", f"cannot connect: {text}")
        else:
            report.add("fail", "query", f"a check failed: {text}")
    return report


async def startup_problems(dsn: str, within: float) -> list[str]:
    """What keeps ``dsn`` from serving, as lines for a start-up log record (password
    masked); empty when nothing does. Bounded by ``within`` seconds."""
    report = await diagnose(dsn, within)
    return [] if report.can_serve else report.problems()


def check(dsn: str, within: float = 5.0) -> Report:
    """:func:`diagnose` from synchronous code (the CLI)."""
    return asyncio.run(diagnose(dsn, within))


Query = Callable[..., Awaitable[Any]]


async def _diagnose(report: Report, dsn: str, connect_timeout: int) -> None:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=connect_timeout
    )
    async with conn:

        async def one(sql: str, *params: Any) -> Any:
            cursor = await conn.execute(sql, params or None)
            row = await cursor.fetchone()
            return None if row is None else row[0]

        row = await (
            await conn.execute(
                "SELECT current_user, current_database(), "
                "current_setting('server_version'), current_setting('server_version_num')::int, "
                "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
            )
        ).fetchone()
        assert row is not None
        role, database, version, version_num, superuser = row
        who = f'role "{role}"' + (" (superuser)" if superuser else "")
        report.add("ok", "connection", f'PostgreSQL {version}, database "{database}", as {who}')
        if version_num < MIN_SERVER:
            report.add(
                "warn",
                "server",
                f"PostgreSQL {version} is older than resonate-pg asks for (16+)",
            )

        if not await one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", SCHEMA):
            report.add(
                "fail",
                "schema",
                'resonate-pg\'s schema is not installed (no schema "resonate")',
                INSTALL,
            )
            await _timer_drivers(report, one, database, may_process=False, have_schema=False)
            return
        missing = [name for name in TABLES if await one("SELECT to_regclass(%s) IS NULL", name)] + [
            name for name in FUNCTIONS if await one("SELECT to_regprocedure(%s) IS NULL", name)
        ]
        if missing:
            report.add(
                "fail",
                "schema",
                f'schema "resonate" exists but lacks {", ".join(missing)}',
                INSTALL.replace("install it once", "re-apply it"),
            )
            return

        wire_denied = [
            name
            for name in WIRE
            if not await one("SELECT has_function_privilege(current_user, %s, 'EXECUTE')", name)
        ]
        version_text = "unknown"
        if await one(
            "SELECT has_function_privilege(current_user, %s, 'EXECUTE')",
            "resonate.get_schema_version()",
        ):
            version_text = str(await one("SELECT resonate.get_schema_version()"))
        report.add(
            "ok",
            "schema",
            f"resonate-pg schema {version_text} installed "
            '(schema "resonate", resonate.get_schema_version())',
        )
        if wire_denied:
            report.add(
                "fail",
                "privileges",
                f"{who} may not call {', '.join(wire_denied)}",
                f'GRANT resonate_worker TO "{role}";  (the role resonate.sql creates for this)',
            )
        else:
            report.add("ok", "privileges", f"{who} may call the wire entrypoints")
        may_process = bool(
            await one("SELECT has_function_privilege(current_user, %s, 'EXECUTE')", TIMERS)
        )
        await _timer_drivers(report, one, database, may_process=may_process, have_schema=True)


async def _timer_drivers(
    report: Report, one: Query, database: str, *, may_process: bool, have_schema: bool
) -> None:
    """Who calls ``resonate.process_timeouts()``: this role's own connections, or pg_cron."""
    available = bool(
        await one("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron')")
    )
    installed = await one("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")
    # pg_cron lives in one database (cron.database_name) and may run jobs in others.
    elsewhere = await one("SELECT current_setting('cron.database_name', true)")
    elsewhere = elsewhere if installed is None and elsewhere not in (None, "", database) else None
    jobs: int | None = None
    job_error = ""
    if installed is not None:
        try:
            jobs = int(
                await one(
                    "SELECT count(*) FROM cron.job WHERE active AND database = %s "
                    "AND command ILIKE %s",
                    database,
                    "%resonate.process_timeouts%",
                )
            )
        except Exception as exc:  # no privilege on cron.job, another pg_cron layout
            job_error = " ".join(str(exc).split())
    if installed is None:
        cron = "pg_cron is available but not installed" if available else "pg_cron is not available"
    elif jobs:
        cron = f"pg_cron {installed} calls resonate.process_timeouts() ({jobs} job(s))"
    elif job_error:
        cron = f"pg_cron {installed} is installed but its jobs could not be read ({job_error})"
    else:
        cron = f"pg_cron {installed} is installed but no job calls resonate.process_timeouts()"

    if not have_schema:
        report.add(
            "info",
            "timers",
            f"{cron}; with the schema, a role that may call {TIMERS} "
            "(a superuser, the schema's owner) processes timers itself",
        )
        return
    if may_process:
        report.add(
            "ok",
            "timers",
            f"this role may call {TIMERS}: every connection processes timers itself ({cron})",
        )
        return
    if jobs:
        report.add("ok", "timers", f"this role may not call {TIMERS}; {cron}")
        return
    if elsewhere:
        report.add(
            "warn",
            "timers",
            f'this role may not call {TIMERS}; pg_cron runs in database "{elsewhere}", '
            "where this check cannot see whether a job calls it in this database",
            "look there: SELECT jobname, schedule, database, active FROM cron.job;",
        )
        return
    hints = [
        f"connect as a role that may call {TIMERS} (a superuser or the schema's owner)",
    ]
    if installed is not None:
        hints.append(
            "or schedule it: SELECT cron.schedule_in_database('resonate_process_timeouts', "
            f"'5 seconds', 'SELECT resonate.process_timeouts()', '{database}');"
        )
    elif available:
        hints.append(
            "or install pg_cron (shared_preload_libraries = 'pg_cron', CREATE EXTENSION "
            "pg_cron) and re-apply resonate.sql: it schedules the job"
        )
    else:
        hints.append("or install pg_cron on the server and re-apply resonate.sql")
    report.add(
        "fail",
        "timers",
        f"this role may not call {TIMERS} and {cron}: durable sleeps, leases, retries and "
        "promise timeouts would never fire",
        *hints,
    )


__all__ = ["Finding", "Report", "check", "diagnose", "mask", "mask_dsn", "startup_problems"]
