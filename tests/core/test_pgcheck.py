"""``resonate-web pg check DSN``, and the same diagnosis from a starting worker and gateway.

Against the session's real cluster, through the real CLI in a subprocess: an
empty database, one with resonate-pg's schema, a role that may not process
timers, and a port where nothing listens.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest

from resonate_web import Functions
from resonate_web._core.pgcheck import mask, mask_dsn
from resonate_web._core.runtime import Runtime
from resonate_web.settings import Settings
from tests.support import postgres, procs


def pg_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = procs.python_module("resonate_web.cli", "pg", "check", *args)
    return subprocess.run(argv, cwd=procs.ROOT, env=env, capture_output=True, text=True, timeout=60)


def password_of(dsn: str) -> str:
    return dsn.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def test_a_database_with_the_schema_can_serve(pg_dsn: str) -> None:
    out = pg_check(pg_dsn)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("resonate-pg check of postgresql://postgres:***@127.0.0.1:")
    assert any(
        line.startswith("OK    schema: resonate-pg schema 0.1.0 installed") for line in lines
    )
    assert any(
        line.startswith("OK    timers: this role may call resonate.process_timeouts()")
        for line in lines
    )
    assert lines[-1] == "=> this database can serve as a Resonate backend"
    assert password_of(pg_dsn) not in out.stdout + out.stderr


def test_an_empty_database_says_how_to_install_the_schema(pg_empty_dsn: str) -> None:
    out = pg_check(pg_empty_dsn)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL  schema: resonate-pg's schema is not installed" in out.stdout
    assert 'psql "$DSN" -f resonate.sql' in out.stdout
    assert out.stdout.splitlines()[-1] == "=> this database cannot serve as a Resonate backend"
    assert password_of(pg_empty_dsn) not in out.stdout + out.stderr


def test_a_closed_port_cannot_serve() -> None:
    dsn = f"postgresql://app:s3cret-pw@127.0.0.1:{procs.free_port()}/app"
    out = pg_check(dsn, "--timeout", "2")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL  connection: cannot connect" in out.stdout
    assert "postgresql://app:***@127.0.0.1" in out.stdout
    assert "s3cret-pw" not in out.stdout + out.stderr


@pytest.fixture(scope="module")
def least_privilege_dsn(pg_cluster: postgres.Cluster, pg_dsn: str) -> Iterator[str]:
    """``pg_dsn``'s database as a role with only resonate-pg's ``resonate_worker`` grants."""
    role, password = f"app_{uuid.uuid4().hex[:8]}", "pa:ss/w@rd" + uuid.uuid4().hex[:6]
    pg_cluster.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE resonate_worker")
    yield pg_cluster.dsn(pg_dsn.rsplit("/", 1)[1], user=role, password=password)
    pg_cluster.execute(f"DROP OWNED BY {role}; DROP ROLE {role}", pg_dsn.rsplit("/", 1)[1])


def test_a_role_that_may_not_process_timers_needs_pg_cron(least_privilege_dsn: str) -> None:
    out = pg_check(least_privilege_dsn)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "OK    privileges:" in out.stdout  # the wire entrypoints: granted
    assert "FAIL  timers: this role may not call resonate.process_timeouts()" in out.stdout
    assert "pg_cron is not available" in out.stdout
    assert "install pg_cron" in out.stdout
    password = least_privilege_dsn.split("://")[1].split("@")[0].split(":", 1)[1]
    assert password not in out.stdout and "pa:ss" not in out.stdout


def test_the_dsn_defaults_to_resonate_url_and_other_urls_are_usage_errors(pg_dsn: str) -> None:
    env = {"PYTHONPATH": procs.PYTHONPATH, "PATH": "/usr/bin:/bin", "RESONATE_URL": pg_dsn}
    assert pg_check(env=env).returncode == 0
    out = pg_check("http://user:hunter2@127.0.0.1:8001")
    assert out.returncode == 2
    assert "takes a postgresql:// DSN" in out.stderr and "hunter2" not in out.stderr


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://app:secret@db/app", "postgresql://app:***@db/app"),
        ("postgres://app:p%40ss@db:5432/app?x=1", "postgres://app:***@db:5432/app?x=1"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("host=db password=secret user=app", "host=db password=*** user=app"),
        ("host=db password='se cret' user=app", "host=db password=*** user=app"),
    ],
)
def test_masking(text: str, masked: str) -> None:
    assert mask_dsn(text) == masked
    assert mask(f"error in {text}: boom") == f"error in {masked}: boom"


def test_a_worker_on_an_empty_database_gives_the_diagnosis(pg_empty_dsn: str) -> None:
    argv = procs.python_module("resonate_web.cli", "worker", "examples.gateway_worker.functions")
    env = {"PYTHONPATH": procs.PYTHONPATH, "PATH": "/usr/bin:/bin", "RESONATE_URL": pg_empty_dsn}
    out = subprocess.run(argv, env=env, cwd=procs.ROOT, capture_output=True, timeout=60, text=True)
    assert out.returncode == 2, out.stderr
    assert "schema: resonate-pg's schema is not installed" in out.stderr
    assert 'psql "$DSN" -f resonate.sql' in out.stderr
    assert password_of(pg_empty_dsn) not in out.stderr


async def finished(runtime: Runtime) -> None:
    """Wait for the start-up check the gateway's runtime runs in the background."""
    check = runtime._backend_check
    assert check is not None
    await asyncio.wait_for(asyncio.shield(check), 30)


async def test_a_gateway_on_an_empty_database_logs_the_diagnosis_at_start_up(
    pg_empty_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Runtime(Settings.load(url=pg_empty_dsn, environ={}), Functions())
    with caplog.at_level(logging.ERROR, logger="resonate_web"):
        await runtime.start()
        try:
            await finished(runtime)
        finally:
            await runtime.stop()
    assert "the Postgres backend at postgresql://postgres:***@127.0.0.1:" in caplog.text
    assert "schema: resonate-pg's schema is not installed" in caplog.text
    assert password_of(pg_empty_dsn) not in caplog.text


async def test_a_gateway_on_a_database_that_can_serve_logs_no_diagnosis(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Runtime(Settings.load(url=pg_dsn, environ={}), Functions())
    with caplog.at_level(logging.INFO, logger="resonate_web"):
        await runtime.start()
        try:
            await finished(runtime)
        finally:
            await runtime.stop()
    assert "cannot serve" not in caplog.text


def _catalog(**answers: object) -> Callable[..., Awaitable[object]]:
    """Catalog answers for the timer-driver checks (pg_cron is not in the test cluster)."""

    async def one(sql: str, *params: object) -> object:
        for key, value in answers.items():
            if key in sql:
                return value
        raise AssertionError(sql)

    return one


@pytest.mark.parametrize(
    ("catalog", "level", "says"),
    [
        (
            {
                "pg_available_extensions": True,
                "pg_extension": "1.6",
                "cron.database_name": None,
                "cron.job": 1,
            },
            "ok",
            "pg_cron 1.6 calls resonate.process_timeouts() (1 job(s))",
        ),
        (
            {
                "pg_available_extensions": True,
                "pg_extension": "1.6",
                "cron.database_name": None,
                "cron.job": 0,
            },
            "fail",
            "SELECT cron.schedule_in_database('resonate_process_timeouts', '5 seconds'",
        ),
        (
            {"pg_available_extensions": True, "pg_extension": None, "cron.database_name": None},
            "fail",
            "CREATE EXTENSION pg_cron) and re-apply resonate.sql",
        ),
        (
            {
                "pg_available_extensions": True,
                "pg_extension": None,
                "cron.database_name": "postgres",
            },
            "warn",
            'pg_cron runs in database "postgres"',
        ),
    ],
)
def test_a_least_privilege_role_s_timers_with_pg_cron(
    catalog: dict[str, object], level: str, says: str
) -> None:
    from resonate_web._core.pgcheck import Report, _timer_drivers

    report = Report(dsn="postgresql://app:pw@db/app")
    asyncio.run(
        _timer_drivers(report, _catalog(**catalog), "app", may_process=False, have_schema=True)
    )
    (finding,) = report.findings
    assert finding.level == level
    assert says in " ".join([finding.text, *finding.hints])
    assert report.can_serve == (level != "fail")
