"""Settings of the example project.

No ``RESONATE_URL``: every function runs inline on the embedded backend.
``RESONATE_URL`` set: functions are dispatched to ``RESONATE_TARGET`` (``workers``),
which ``python django_project/manage.py resonate_worker`` serves.
"""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "resonate-web example: not a secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["resonate_web.django"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # A Problem the client raises in a view (a bad id, say) answers as problem+json.
    "resonate_web.django.ProblemMiddleware",
]
ROOT_URLCONF = "django_project.urls"
WSGI_APPLICATION = "django_project.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
USE_TZ = True

# The rest (URL, TARGET, WAIT_CAP, ...) may come from RESONATE_* variables too.
# UI: the dashboard at /resonate/ui.
RESONATE = {"FUNCTIONS": ["functions"], "UI": True}
