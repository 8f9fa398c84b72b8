"""docs/deployment.md's walk-through, from an empty PostgreSQL to a gateway and workers,
run command by command, in order, against the session's private cluster.

The commands are read from the document itself (between the ``walkthrough``
markers), so the two cannot drift apart. Only the addresses change: the
document's ``db.internal:5432`` is the cluster's 127.0.0.1 port, its superuser
password the cluster's, and the gateway's port 8000 a free one. A command
marked ``# exits N`` must exit N, any other 0; ``resonate-web worker`` and
``uvicorn`` keep running (each is waited for until it is ready). The output
shown after a block must appear in what that block printed (``...`` stands for
anything). ``pip install`` is checked with ``--dry-run --no-index`` against
this environment.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support import postgres, procs

DOC = procs.ROOT / "docs" / "deployment.md"
APP = procs.ROOT / "examples" / "gateway_worker"
LONG_RUNNING = ("resonate-web worker", "uvicorn ")


def walkthrough() -> list[tuple[str, str]]:
    """The (language, text) of every fenced block between the walkthrough markers."""
    text = DOC.read_text()
    region = text.split("<!-- walkthrough: begin -->", 1)[1]
    region = region.split("<!-- walkthrough: end -->", 1)[0]
    return re.findall(r"^```(\w*)\n(.*?)^```", region, re.S | re.M)


def commands(block: str) -> Iterator[tuple[str, int]]:
    """Each command line of a bash block, with the exit status it must have."""
    for raw in block.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        expected = re.search(r"\s+#\s*exits (\d+)\s*$", line)
        if expected:
            yield line[: expected.start()], int(expected.group(1))
        else:
            yield line, 0


def shown(expected: str, printed: str) -> None:
    """Every line of ``expected`` is a line of ``printed`` (``...`` matches anything)."""
    lines = printed.splitlines()
    for want in expected.splitlines():
        if not want.strip():
            continue
        pattern = re.escape(want.strip()).replace(re.escape("..."), ".*")
        assert any(re.fullmatch(pattern, line.strip()) for line in lines), (
            f"the document shows {want!r}; the commands printed:\n{printed}"
        )


class Shell:
    """Runs the document's commands one after another, keeping what ``export`` sets."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.background: list[subprocess.Popen[bytes]] = []

    def run(self, command: str, status: int) -> str:
        envfile = self.workdir / ".env"
        script = f'{command}\nstatus=$?\nenv -0 > "{envfile}"\nexit $status\n'
        out = subprocess.run(
            ["bash", "-c", script],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == status, f"{command}\n{out.stdout}{out.stderr}"
        pairs = (item.split("=", 1) for item in envfile.read_text().split("\0") if "=" in item)
        self.env = {key: value for key, value in pairs if not key.startswith("BASH_FUNC")}
        return out.stdout + out.stderr

    def start(self, command: str, gateway: str) -> None:
        log = self.workdir / f"process-{len(self.background)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.background.append(proc)
        if command.startswith("resonate-web worker"):
            procs.wait_log_line(log, "worker ready:", f"os_pid={proc.pid} ", proc=proc)
        else:
            procs.wait_http(f"{gateway}/resonate/health", proc=proc)

    def stop(self) -> None:
        for proc in reversed(self.background):
            procs.stop(proc, signal.SIGTERM)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_the_postgres_walkthrough_runs_as_written(
    pg_cluster: postgres.Cluster, tmp_path: Path
) -> None:
    gateway_port = procs.free_port()
    replace = {
        "db.internal:5432": f"127.0.0.1:{pg_cluster.port}",
        "postgres:admin-secret@": f"postgres:{quote(pg_cluster.password, safe='')}@",
        ":8000": f":{gateway_port}",
        "--port 8000": f"--port {gateway_port}",
    }

    def here(text: str) -> str:
        for old, new in replace.items():
            text = text.replace(old, new)
        return text

    (tmp_path / "resonate.sql").symlink_to(postgres.SCHEMA)  # "in the current directory"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESONATE_", "PG"))}
    env["PATH"] = os.pathsep.join([str(postgres.pg_bin()), str(procs.BIN), env.get("PATH", "")])
    env["PYTHONPATH"] = str(APP)  # as if run in examples/gateway_worker/
    shell = Shell(tmp_path, env)
    gateway = f"http://127.0.0.1:{gateway_port}"
    blocks = walkthrough()
    assert [lang for lang, _ in blocks].count("bash") >= 6
    ran = 0
    printed = ""
    try:
        for lang, text in blocks:
            if lang != "bash":
                shown(here(text), printed)
                continue
            printed = ""
            for command, status in commands(here(text)):
                ran += 1
                if command.startswith("pip install"):
                    pip = f"{sys.executable} -m pip install --dry-run --no-index"
                    out = shell.run(command.replace("pip install", pip, 1), 0)
                    assert "does not provide the extra" not in out, out
                elif command.startswith(LONG_RUNNING):
                    shell.start(command, gateway)
                else:
                    printed += shell.run(command, status) + "\n"
    finally:
        shell.stop()
        pg_cluster.execute("DROP DATABASE IF EXISTS shop WITH (FORCE)")
        pg_cluster.execute("DROP ROLE IF EXISTS shop_worker")
        pg_cluster.execute("DROP ROLE IF EXISTS shop")
    assert ran >= 14
    workers = shell.background[:2]
    assert [p.returncode for p in workers] == [0, 0]  # each drained on SIGTERM
