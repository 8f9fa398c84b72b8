"""The test Django project serving ``tests.support.startup_app``'s ticking function."""

from __future__ import annotations

from tests.support.django_settings import *  # noqa: F403

RESONATE = {"FUNCTIONS": ["tests.support.startup_app:functions"]}
