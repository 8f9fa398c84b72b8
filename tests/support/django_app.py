"""Django, configured once per process with :mod:`tests.support.django_settings`."""

from __future__ import annotations

import os

import django
import pytest

SETTINGS_MODULE = "tests.support.django_settings"

#: ``django.tasks`` (and so ``ResonateBackend``) is Django 6.0 and later.
HAS_TASKS = django.VERSION >= (6, 0)
#: Marks a test that enqueues ``django.tasks`` tasks: deselected on an older Django
#: (``-m 'not django_tasks'`` in make compat), never skipped.
needs_tasks = pytest.mark.django_tasks


def setup() -> None:
    """Configure Django for this process (idempotent).

    The settings module is named for the duration of the setup only, so that
    processes the tests start do not inherit it.
    """
    from django.apps import apps

    if apps.ready:
        return
    previous = os.environ.get("DJANGO_SETTINGS_MODULE")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    try:
        django.setup()
        # The app's own tables (the outbox), as `manage.py migrate` makes them.
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0, interactive=False)
        connections.close_all()
    finally:
        if previous is None:
            del os.environ["DJANGO_SETTINGS_MODULE"]
        else:
            os.environ["DJANGO_SETTINGS_MODULE"] = previous
