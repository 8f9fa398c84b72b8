"""``python manage.py resonate_worker [--group GROUP | --queue QUEUE]``: run the exposed
functions and the ``django.tasks`` tasks.

The worker joins ``--group`` (default: ``RESONATE['TARGET']``, else ``workers``),
or the group of the tasks queue ``--queue`` (see :mod:`resonate_web.django.tasks`),
on the backend of ``settings.RESONATE`` (which must be shared: a Resonate
server or PostgreSQL) and serves until SIGTERM or SIGINT, then drains. Django
is set up as for any management command; functions use the ORM as views do.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.core.management.base import BaseCommand, CommandError  # type: ignore[import-untyped]
from django.db import connections  # type: ignore[import-untyped]

from resonate_web.django import conf, outbox
from resonate_web.settings import ConfigurationError
from resonate_web.worker import run_worker


class Command(BaseCommand):  # type: ignore[misc]
    help = "Run a Resonate worker serving the functions in settings.RESONATE['FUNCTIONS']."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--group", help="worker group to join (default: RESONATE['TARGET'], else 'workers')"
        )
        parser.add_argument(
            "--queue",
            action="append",
            default=[],
            help="run the django.tasks tasks of this queue (may be repeated: queues of one group)",
        )

    def handle(
        self, *args: Any, group: str | None = None, queue: list[str] | None = None, **options: Any
    ) -> None:
        try:
            config = conf.raw_config()
            settings = conf.load_settings(config)
            functions = conf.load_functions_of(config)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if queue:
            if group is not None:
                raise CommandError("give --group or --queue, not both")
            group = _group_of_queues(queue, settings.target)
        # Connections opened by the checks or by imports would be shared with
        # whatever runs next; functions open their own, in their own threads.
        connections.close_all()
        # Starts left in the outbox by web processes (that died after their
        # commit, or found the backend down) are sent from here too. The runtime
        # that sends them starts only when there is one to send.
        try:
            outbox.ensure_sweeper(conf.state())
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        try:
            code = run_worker(functions, settings, group=group, wrap=conf.in_django)
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from None
        finally:
            outbox.stop_sweeper()
        if code:
            raise CommandError(f"the worker exited with status {code}", returncode=code)


def _group_of_queues(queues: list[str], target: str) -> str:
    """The one worker group the tasks of ``queues`` run in (a worker joins one group)."""
    try:
        from django.tasks import task_backends  # type: ignore[import-untyped]
    except ImportError:
        import django  # type: ignore[import-untyped]

        raise CommandError(
            f"--queue runs django.tasks tasks, which need Django 6.0 or later "
            f"(this is Django {django.get_version()}); use --group"
        ) from None

    from resonate_web.django.tasks import ResonateBackend

    groups: dict[str, str] = {}
    for name in queues:
        found = [
            b
            for b in task_backends.all()
            if isinstance(b, ResonateBackend) and (not b.queues or name in b.queues)
        ]
        if not found:
            raise CommandError(
                f"no ResonateBackend in settings.TASKS has the queue {name!r} in its QUEUES"
            )
        groups[name] = found[0].group_of(name, target)
    if len(set(groups.values())) > 1:
        listed = ", ".join(f"{q} -> {g}" for q, g in groups.items())
        raise CommandError(
            f"these queues run in different worker groups ({listed}): start one worker per group"
        )
    return next(iter(groups.values()))
