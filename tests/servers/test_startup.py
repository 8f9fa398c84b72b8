"""Flask and Django servers start the runtime with the process: schedules fire and the
backend is announced before any request, in the one process that serves.

Every server runs ``tests.support.startup_app``'s ``beat`` (every second, on the
embedded backend), which logs ``<pid> <tick id>``. No test sends a request until
ticks have fired; then one asks the server for a tick, which proves the ticks
live in the process that serves.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest

from tests.support import procs

FLASK_APP = "tests.support.startup_flask"
DJANGO = {"DJANGO_SETTINGS_MODULE": "tests.support.startup_django"}
ANNOUNCEMENT = "running on the embedded in-process backend"


def _ticks(ticklog: Path, proc: subprocess.Popen[bytes], count: int) -> list[tuple[str, str]]:
    """The first ``count`` ticks logged, as ``(pid, tick id)``, once they are."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = ticklog.read_text().splitlines() if ticklog.exists() else []
        if len(lines) >= count:
            return [(pid, tick) for pid, tick in (line.split() for line in lines)]
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {count} ticks within 30s")


def _serve_and_tick(
    argv: Sequence[str],
    tmp_path: Path,
    env: dict[str, str],
    base: str | None,
    then: Callable[[str], None] | None = None,
) -> None:
    """Start ``argv``; ticks fire and the backend is announced before any request,
    in one process only; then (given ``base``) the server answers for a tick."""
    ticklog, log = tmp_path / "ticks.log", tmp_path / "server.log"
    with procs.process(argv, env={**env, "TEST_TICKLOG": str(ticklog)}, log=log) as proc:
        ticks = _ticks(ticklog, proc, 2)
        procs.wait_log_line(log, ANNOUNCEMENT, proc=proc)
        # One process fires them (not a reloader's parent, not gunicorn's master) ...
        assert len({pid for pid, _ in ticks}) == 1, ticks
        assert len({tick for _, tick in ticks}) == len(ticks), ticks
        assert log.read_text(errors="replace").count(ANNOUNCEMENT) == 1
        if base is None:
            return
        # ... and it is the process that serves: the tick is its invocation.
        tick = ticks[0][1]
        procs.wait_answer(f"{base}/resonate/health", proc)
        doc = httpx.get(f"{base}/resonate/invocations/{tick}", params={"wait": 10}, timeout=20)
        assert doc.status_code == 200, doc.text
        assert doc.json()["status"] == "resolved" and doc.json()["result"] == "beat"
        if then is not None:
            then(base)


def _flask(*args: str) -> list[str]:
    return [str(procs.BIN / "flask"), "--app", FLASK_APP, *args]


def _django(*args: str) -> list[str]:
    return [procs.sys.executable, "-m", "django", *args]


def _gunicorn(app: str, *args: str) -> tuple[list[str], str]:
    port = procs.free_port()
    argv = [str(procs.BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", *args, app]
    return argv, f"http://127.0.0.1:{port}"


def test_flask_run_with_the_reloader(tmp_path: Path) -> None:
    """``flask --debug run``: the reloader's child serves and ticks; its parent does not."""
    port = procs.free_port()
    argv = _flask("--debug", "run", "--port", str(port))
    _serve_and_tick(argv, tmp_path, {}, f"http://127.0.0.1:{port}")


@pytest.mark.parametrize("preload", [False, True], ids=["gunicorn", "gunicorn-preload"])
def test_flask_under_gunicorn(tmp_path: Path, preload: bool) -> None:
    """Without ``--preload`` the worker imports the app and starts it; with it the master
    imports the app and each worker starts the runtime as it is forked."""
    argv, base = _gunicorn(f"{FLASK_APP}:app", *(["--preload"] if preload else []))
    _serve_and_tick(argv, tmp_path, {}, base)


def test_django_runserver_with_the_autoreloader(tmp_path: Path) -> None:
    """``runserver`` (autoreloading): the child (``RUN_MAIN``) serves and ticks, not its parent."""
    port = procs.free_port()
    argv = _django("runserver", f"127.0.0.1:{port}")
    _serve_and_tick(argv, tmp_path, DJANGO, f"http://127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("app", "on_the_servers_loop"),
    [("tests.support.django_asgi", False), ("tests.support.django_asgi_hosted", True)],
    ids=["django-asgi", "resonate-asgi"],
)
def test_django_under_uvicorn(tmp_path: Path, app: str, on_the_servers_loop: bool) -> None:
    """Django's own ASGI application: the runtime on a loop of its own, started with the
    process. resonate_web's: started by the server's lifespan, on the server's loop,
    so async views await it without a hop; either way before any request."""
    port = procs.free_port()
    argv = [
        str(procs.BIN / "uvicorn"),
        f"{app}:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]

    def loop_check(base: str) -> None:
        answer = httpx.get(f"{base}/runtime-loop", timeout=20)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"same_loop": on_the_servers_loop}

    _serve_and_tick(argv, tmp_path, DJANGO, f"http://127.0.0.1:{port}", loop_check)


def test_django_under_gunicorn_with_preload(tmp_path: Path) -> None:
    argv, base = _gunicorn("tests.support.django_wsgi:application", "--preload")
    _serve_and_tick(argv, tmp_path, DJANGO, base)


@pytest.mark.parametrize(
    "argv",
    [_django("check"), _django("migrate", "--check"), _flask("routes")],
    ids=["django-check", "django-migrate", "flask-routes"],
)
def test_commands_that_do_not_serve_start_nothing(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in procs.os.environ.items() if not k.startswith("RESONATE_")}
    env.update(DJANGO, PYTHONPATH=procs.PYTHONPATH, TEST_TICKLOG=str(tmp_path / "ticks.log"))
    done = subprocess.run(argv, env=env, cwd=procs.ROOT, capture_output=True, timeout=60)
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert ANNOUNCEMENT not in output
    assert "Traceback" not in output
    assert not (tmp_path / "ticks.log").exists()
