"""The Django app: ``INSTALLED_APPS = [..., "resonate_web.django"]``."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]
from django.core import checks  # type: ignore[import-untyped]
from django.test.signals import setting_changed  # type: ignore[import-untyped]


class ResonateConfig(AppConfig):  # type: ignore[misc]
    name = "resonate_web.django"
    label = "resonate_web"
    verbose_name = "Resonate"

    def ready(self) -> None:
        """Register the system checks and follow changes of ``settings.RESONATE``.

        Starts nothing: no event loop, no connection, no database access. Safe to
        call more than once.
        """
        from resonate_web.django import conf
        from resonate_web.django.checks import check_resonate

        checks.register(check_resonate, "resonate")
        setting_changed.connect(conf.setting_changed, dispatch_uid="resonate_web.django.conf")
