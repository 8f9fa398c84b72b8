"""The Django project the tests serve (in process, and under gunicorn and uvicorn)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_DB_DIR = Path(tempfile.mkdtemp(prefix="resonate-web-django-"))
atexit.register(shutil.rmtree, _DB_DIR, ignore_errors=True)

SECRET_KEY = "resonate-web tests only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "resonate_web.django",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "tests.support.django_urls"
# A worker process started by a test shares the test's database through DJANGO_TEST_DB.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_TEST_DB", str(_DB_DIR / "db.sqlite3")),
    }
}
RESONATE: dict[str, object] = {"FUNCTIONS": ["tests.support.django_functions:functions"]}
# A worker process started by a test sweeps the outbox as often as the test says.
if os.environ.get("DJANGO_TEST_OUTBOX_INTERVAL"):
    RESONATE["OUTBOX_INTERVAL"] = float(os.environ["DJANGO_TEST_OUTBOX_INTERVAL"])
TASKS = {
    "default": {
        "BACKEND": "resonate_web.django.tasks.ResonateBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {
            "RETRY_POLICY": "tests.support.django_tasks.RETRIES",
            "RETRY_POLICIES": {
                "tests.support.django_tasks.stubborn": "tests.support.django_tasks.STUBBORN_RETRIES"
            },
        },
    }
}
