"""``uvicorn tests.support.django_asgi_hosted:application``: the runtime on the server's loop."""

from __future__ import annotations

import os

from resonate_web.django.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.django_settings")
application = get_asgi_application()
