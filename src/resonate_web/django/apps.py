"""The Django app: ``INSTALLED_APPS = [..., "resonate_web.django"]``."""

from __future__ import annotations

import os
import sys

from django.apps import AppConfig  # type: ignore[import-untyped]
from django.core import checks  # type: ignore[import-untyped]
from django.test.signals import setting_changed  # type: ignore[import-untyped]
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV  # type: ignore[import-untyped]


class ResonateConfig(AppConfig):  # type: ignore[misc]
    name = "resonate_web.django"
    label = "resonate_web"
    verbose_name = "Resonate"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        """Register the system checks, follow changes of ``settings.RESONATE``, and
        start the runtime if this process serves.

        ``runserver`` (in the process that serves, not the autoreloader's
        parent), gunicorn and the ASGI servers start the runtime here, so
        schedules fire before any request (see :mod:`resonate_web._core.startup`);
        every other command (``migrate``, ``check``, ``shell``, a test run)
        starts nothing: no event loop, no connection. Safe to call more than once.
        """
        from resonate_web._core.runtime import Portal
        from resonate_web._core.startup import autostart, gunicorn_master
        from resonate_web.django import conf, outbox
        from resonate_web.django.checks import check_resonate

        conf.on_reset(outbox.stop_sweeper)
        try:
            from resonate_web.django.tasks import task_functions
        except ImportError:  # Django before 6: no django.tasks
            pass
        else:
            conf.include(task_functions)
        checks.register(check_resonate, "resonate")
        setting_changed.connect(conf.setting_changed, dispatch_uid="resonate_web.django.conf")

        def serving() -> Portal:
            st = conf.state()
            if not gunicorn_master():
                # Starts left in the outbox (by a process that died after its
                # commit, or while the backend was down) are sent from here too.
                outbox.ensure_sweeper(st)
            return st.portal

        if not conf.hosted_by_server:
            autostart(serving, serving_command=_runserver())


def _runserver() -> bool:
    """Whether ``manage.py runserver`` runs in this process, and it is the one that serves.

    With the autoreloader (the default) the first process only restarts a child
    (``RUN_MAIN=true``) that serves.
    """
    argv = sys.argv
    if len(argv) < 2 or argv[1] != "runserver":
        return False
    return os.environ.get(DJANGO_AUTORELOAD_ENV) == "true" or "--noreload" in argv
