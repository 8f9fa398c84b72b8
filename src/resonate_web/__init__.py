"""Durable execution behind FastAPI, Flask and Django, on the Resonate SDK.

What an application imports is here; adapters live in
``resonate_web.fastapi``, ``resonate_web.flask`` and ``resonate_web.django``.
"""

from resonate_web.exposure import Functions, load_functions
from resonate_web.facade import AsyncClient, AsyncHandle, SyncClient, SyncHandle
from resonate_web.problems import Problem
from resonate_web.runtime import Portal, Runtime
from resonate_web.settings import ConfigurationError, Settings

__all__ = [
    "AsyncClient",
    "AsyncHandle",
    "ConfigurationError",
    "Functions",
    "Portal",
    "Problem",
    "Runtime",
    "Settings",
    "SyncClient",
    "SyncHandle",
    "load_functions",
]
