"""The Flask app serving ``tests.support.startup_app``'s ticking function."""

from __future__ import annotations

from flask import Flask

from resonate_web.flask import Resonate
from tests.support.startup_app import functions

app = Flask(__name__)
Resonate(app, functions)
