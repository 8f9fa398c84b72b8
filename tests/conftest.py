from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from tests.support import postgres, procs

#: Modules whose every test starts real processes (marked ``multiprocess``).
MULTIPROCESS_MODULES = {
    "test_dashboard",
    "test_deployment_docs",
    "test_devserver",
    "test_distributed",
    "test_distributed_example",
    "test_distributed_schedules",
    "test_django_worker",
    "test_interop_typescript",
    "test_examples",
    "test_flask_server",
    "test_real_servers",
    "test_startup",
    "test_telemetry",
    "test_worker",
}


def pytest_configure(config: pytest.Config) -> None:
    # The resonate_clock fixture: an installed resonate-web registers it (pytest11);
    # a checkout run from its source tree loads it here.
    if not config.pluginmanager.has_plugin("resonate_web"):
        config.pluginmanager.import_plugin("resonate_web.testing.plugin")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in MULTIPROCESS_MODULES or "-gunicorn" in item.name or "-uvicorn" in item.name:
            item.add_marker(pytest.mark.multiprocess)
    # The tests that wait for real minutes go first, so that under pytest-xdist the
    # rest of the suite runs beside them instead of after them.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def uid() -> str:
    return "t-" + uuid.uuid4().hex[:12]


# ── Postgres (resonate-pg): one private cluster per session ─────────────────


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.Cluster]:
    """A private PostgreSQL 18 cluster whose template database has resonate-pg's schema.

    Skipped (with the reason) only when the schema file is absent; under CI
    (``CI=true``) that is a failure instead: CI always has it.
    """
    postgres.require()
    with postgres.cluster() as cluster:
        yield cluster


def _database_prefix(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())[:40]


@pytest.fixture(scope="module")
def pg_dsn(pg_cluster: postgres.Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with resonate-pg's schema for this test module; its superuser DSN."""
    dsn = pg_cluster.database(_database_prefix(request))
    yield dsn
    pg_cluster.drop(dsn)


@pytest.fixture(scope="module")
def pg_empty_dsn(pg_cluster: postgres.Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database without resonate-pg's schema for this test module; its DSN."""
    dsn = pg_cluster.database(_database_prefix(request) + "_empty", schema=False)
    yield dsn
    pg_cluster.drop(dsn)


@pytest.fixture(scope="module", params=["dev", "pg"])
def backend_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Each real shared backend in turn, for the module's processes (``RESONATE_URL``):
    ``resonate-web dev`` on a free port, then a fresh Postgres database (resonate-pg)."""
    if request.param == "pg":
        yield request.getfixturevalue("pg_dsn")
        return
    log = tmp_path_factory.mktemp("dev") / "dev.log"
    with procs.dev_server(log=log) as url:
        yield url
