#!/usr/bin/env python
"""``python django_project/manage.py runserver | resonate_worker | check``, from
``examples/gateway_worker`` (where ``functions.py`` is)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # The project package and functions.py live one directory up.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
