"""``python manage.py resonate_worker [--group GROUP]``: run the exposed functions.

The worker joins ``--group`` (default: ``RESONATE['TARGET']``, else ``workers``)
on the backend of ``settings.RESONATE`` (which must be shared: a Resonate
server or PostgreSQL) and serves until SIGTERM or SIGINT, then drains. Django
is set up as for any management command; functions use the ORM as views do.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.core.management.base import BaseCommand, CommandError  # type: ignore[import-untyped]
from django.db import connections  # type: ignore[import-untyped]

from resonate_web.django import conf
from resonate_web.settings import ConfigurationError
from resonate_web.worker import run_worker


class Command(BaseCommand):  # type: ignore[misc]
    help = "Run a Resonate worker serving the functions in settings.RESONATE['FUNCTIONS']."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--group", help="worker group to join (default: RESONATE['TARGET'], else 'workers')"
        )

    def handle(self, *args: Any, group: str | None = None, **options: Any) -> None:
        try:
            config = conf.raw_config()
            settings = conf.load_settings(config)
            functions = conf.load_exposed(conf.function_specs(config))
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        # Connections opened by the checks or by imports would be shared with
        # whatever runs next; functions open their own, in their own threads.
        connections.close_all()
        try:
            code = run_worker(functions, settings, group=group, wrap=conf.in_django)
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from None
        if code:
            raise CommandError(f"the worker exited with status {code}", returncode=code)
