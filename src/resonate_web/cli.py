"""``resonate-web``: the development server and the worker runner.

    resonate-web dev [--host 127.0.0.1] [--port 8001]
    resonate-web worker MODULE[:ATTR] [--group workers] [--url URL]
    resonate-web pg check [DSN] [--timeout 5]

Also runnable as ``python -m resonate_web.cli``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from resonate_web.settings import ConfigurationError, Settings

DEV_HELP = """\
Run a local Resonate-protocol server for development and tests.

It speaks what resonate-sdk's HTTP and SSE connections use (POST /,
GET /poll/{group}/{pid}, GET /health), on the SDK's own reference state machine.
State is in memory: a restart forgets every promise and task. It is not for
production; there, point RESONATE_URL at a Resonate server (resonate serve) or
at PostgreSQL (postgresql://..., with resonate-web[pg]).
"""

WORKER_HELP = """\
Run the functions a module exposes, as a member of a worker group.

MODULE[:ATTR] names a module holding a resonate_web.Functions (ATTR picks one
when there are several). The backend comes from --url or RESONATE_URL (a
Resonate server URL, e.g. the dev server's http://127.0.0.1:8001, or a
postgresql:// DSN); every other setting from RESONATE_* variables.

On SIGTERM or SIGINT the worker stops taking tasks, lets running ones finish
for up to --shutdown-timeout seconds, releases the rest to other workers and
exits 0. A second signal skips the wait.
"""


PG_CHECK_HELP = """\
Say whether a PostgreSQL database can serve as a Resonate backend (resonate-pg).

It checks, read-only: that resonate-pg's schema is installed (and its version),
that the role may call the wire entrypoints, and who processes timers: the
role itself (it may call resonate.process_timeouts()) or pg_cron (installed,
with a job scheduled). For what is missing it says how to install it
(psql "$DSN" -f resonate.sql, from resonate-pg). DSN defaults to RESONATE_URL;
its password is masked in every line printed.

Exit status: 0 when the database can serve, 1 when it cannot, 2 for bad usage.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resonate-web", description="resonate-web command line tools"
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("RESONATE_LOG_LEVEL", "INFO"),
        help="logging level (default: INFO, or RESONATE_LOG_LEVEL)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev",
        help="local Resonate-protocol server (development only, in memory)",
        description=DEV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dev.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8001, help="port (default: 8001)")
    _log_level(dev)

    worker = commands.add_parser(
        "worker",
        help="serve a module's exposed functions in a worker group",
        description=WORKER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("module", metavar="MODULE[:ATTR]", help="where the Functions are")
    worker.add_argument(
        "--group", help="the worker group to join (default: RESONATE_TARGET, else 'workers')"
    )
    worker.add_argument("--url", help="backend: Resonate server URL or postgresql:// DSN")
    worker.add_argument(
        "--lease-ttl",
        type=float,
        help="seconds a crashed worker holds a task before it moves on (default: 15)",
    )
    worker.add_argument(
        "--shutdown-timeout",
        type=float,
        help="seconds to let running tasks finish on SIGTERM (default: 5)",
    )
    _log_level(worker)

    pg = commands.add_parser("pg", help="PostgreSQL (resonate-pg) backend tools")
    pg_commands = pg.add_subparsers(dest="pg_command", required=True, metavar="COMMAND")
    check = pg_commands.add_parser(
        "check",
        help="can this database serve as a Resonate backend? (schema, role, timers)",
        description=PG_CHECK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "dsn", nargs="?", metavar="DSN", help="postgresql:// DSN (default: RESONATE_URL)"
    )
    check.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the database (default: 5)"
    )
    _log_level(check)
    return parser


def _log_level(command: argparse.ArgumentParser) -> None:
    """``--log-level`` after the command too (``resonate-web worker --log-level debug``)."""
    command.add_argument("--log-level", default=argparse.SUPPRESS, help="as above")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from resonate_web.worker import configure_logging

    configure_logging(str(args.log_level).upper())
    log = logging.getLogger("resonate_web")
    try:
        if args.command == "dev":
            from resonate_web import _devserver as devserver

            return devserver.run(args.host, args.port)
        if args.command == "pg":
            return _pg_check(args)
        return _worker(args)
    except ConfigurationError as exc:
        log.error("%s", exc)
        return 2


def _worker(args: argparse.Namespace) -> int:
    from resonate_web._core.exposure import load_functions
    from resonate_web.worker import run_worker

    # Like other runners, import the application from the working directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    settings = Settings.load(
        url=args.url, lease_ttl=args.lease_ttl, shutdown_timeout=args.shutdown_timeout
    )
    try:
        functions = load_functions(args.module)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {args.module}: {exc}") from None
    return run_worker(functions, settings, group=args.group)


def _pg_check(args: argparse.Namespace) -> int:
    from resonate_web._core import pgcheck

    dsn = args.dsn or os.environ.get("RESONATE_URL")
    if not dsn:
        raise ConfigurationError("pg check needs a DSN: resonate-web pg check postgresql://...")
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            f"pg check takes a postgresql:// DSN, got {pgcheck.mask_dsn(dsn)!r}"
        )
    if not (args.timeout > 0):
        raise ConfigurationError("--timeout: expected a number of seconds > 0")
    report = pgcheck.check(dsn, args.timeout)
    print("\n".join(report.lines()), flush=True)
    return 0 if report.can_serve else 1


if __name__ == "__main__":
    sys.exit(main())
