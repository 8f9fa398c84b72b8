"""The private Postgres cluster the suite runs resonate-pg on: how it starts and stops."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
from pathlib import Path

import psycopg
import pytest

from tests.support import postgres


def test_the_cluster_serves_the_schema_as_another_user_on_loopback_and_stops_by_pid(
    pg_cluster: postgres.Cluster,
) -> None:
    # pg_cluster is there (so the schema is): start a second, short-lived one.
    with postgres.cluster() as cluster:
        pid, root = cluster.postmaster.pid, cluster.root
        owner = Path(f"/proc/{pid}").stat().st_uid
        if os.getuid() == 0:
            assert pwd.getpwuid(owner).pw_name == postgres.RUN_AS
        dsn = cluster.database()
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT resonate.get_schema_version()").fetchone()
            listen = conn.execute("SHOW listen_addresses").fetchone()
        assert row is not None and row[0]
        assert listen == ("127.0.0.1",)
        assert "@127.0.0.1:" in dsn and ":" + cluster.password + "@" in dsn
    assert cluster.postmaster.returncode is not None
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    assert not root.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", cluster.port), 1).close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_each_module_gets_its_own_database(pg_cluster: postgres.Cluster, pg_dsn: str) -> None:
    other = pg_cluster.database("other")
    try:
        assert other != pg_dsn
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("SELECT resonate.invoke('only-here', 'f', '[]'::jsonb, 'nobody')")
        with psycopg.connect(other) as conn:
            row = conn.execute("SELECT count(*) FROM resonate.promises").fetchone()
        assert row == (0,)
    finally:
        pg_cluster.drop(other)


def test_without_the_schema_it_skips_and_under_ci_it_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(postgres, "SCHEMA", tmp_path / "resonate.sql")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"resonate\.sql"):
        postgres.require()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the Postgres backend tests"):
        postgres.require()


@pytest.mark.skipif(os.getuid() != 0, reason="only root runs the server as another user")
def test_binaries_the_server_s_account_cannot_reach_are_copied_where_it_can(
    pg_cluster: postgres.Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkout under a root-only directory (pytest's tmp_path is one).
    package = postgres.pg_bin().parent.parent
    hidden = tmp_path / "site"
    shutil.copytree(package / "pginstall", hidden / package.name / "pginstall", symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", hidden / f"{package.name}.libs")
    monkeypatch.setattr(postgres, "pg_bin", lambda: hidden / package.name / "pginstall" / "bin")
    with postgres.cluster() as cluster:
        assert cluster.bin.is_relative_to(cluster.root)
        with psycopg.connect(cluster.database()) as conn:
            assert conn.execute("SELECT resonate.get_schema_version()").fetchone()
