"""Durable execution behind FastAPI, Flask and Django, on the Resonate SDK."""

from resonate_web.exposure import Exposed, Functions
from resonate_web.gateway import Gateway
from resonate_web.problems import Problem
from resonate_web.runtime import Portal, Runtime, build_client
from resonate_web.settings import ConfigurationError, Settings

__all__ = [
    "ConfigurationError",
    "Exposed",
    "Functions",
    "Gateway",
    "Portal",
    "Problem",
    "Runtime",
    "Settings",
    "build_client",
]
