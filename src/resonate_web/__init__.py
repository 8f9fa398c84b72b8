"""Durable execution behind FastAPI, Flask and Django, on the Resonate SDK.

What an application imports is here; adapters live in
``resonate_web.fastapi``, ``resonate_web.flask`` and ``resonate_web.django``.
"""

from resonate_web._core.exposure import Functions, load_functions
from resonate_web._core.flow import Concurrency, Debounce, RateLimit
from resonate_web._inprocess import AsyncClient, AsyncHandle, SyncClient, SyncHandle
from resonate_web.problems import Problem
from resonate_web.settings import ConfigurationError, Settings

__all__ = [
    "AsyncClient",
    "AsyncHandle",
    "Concurrency",
    "ConfigurationError",
    "Debounce",
    "Functions",
    "Problem",
    "RateLimit",
    "Settings",
    "SyncClient",
    "SyncHandle",
    "load_functions",
]


def __getattr__(name: str) -> object:
    # Internal since 0.2 (never documented): importable from here for one more release.
    if name in {"Portal", "Runtime"}:
        import warnings

        from resonate_web._core import runtime

        warnings.warn(
            f"resonate_web.{name} is internal and leaves the public API in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
