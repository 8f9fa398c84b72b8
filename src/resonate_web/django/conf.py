"""``settings.RESONATE``, read lazily, and the runtime it describes.

One dict configures everything::

    RESONATE = {
        "FUNCTIONS": ["shop.durable"],   # modules ("module[:attr]") holding a Functions
        "URL": "http://127.0.0.1:8001",  # any core setting: URL, TARGET, WAIT_CAP, ...
    }

The core settings go through :meth:`Settings.load` (the dict wins over
``RESONATE_*`` environment variables); ``FUNCTIONS`` is the one Django-only key.
Nothing is read at import. ``AppConfig.ready()`` builds and starts the runtime
in a process that serves (``runserver``, gunicorn, the ASGI servers: see
:mod:`resonate_web._core.startup`); elsewhere the first request (or
:func:`resonate_web.django.client`) builds it, and its background loop starts in
the process that serves, after any fork. Changing the setting
(``override_settings(RESONATE=...)``) stops the runtime and the next use builds a
fresh one from the new value.
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings as django_settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.db import close_old_connections  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from resonate_web._core.exposure import DurableFn, Functions, load_functions
from resonate_web._core.runtime import is_async, keep_signature
from resonate_web._gateway.auth import Authorize
from resonate_web._inprocess import Hosted, host
from resonate_web.settings import SETTING_NAMES, ConfigurationError, Settings, did_you_mean

SETTING = "RESONATE"
FUNCTIONS_KEY = "FUNCTIONS"
#: A dotted path to the access hook (``authorize(request, action, resource)``).
AUTHORIZE_KEY = "AUTHORIZE"
#: Seconds between two sweeps of the outbox (:mod:`resonate_web.django.outbox`).
OUTBOX_INTERVAL_KEY = "OUTBOX_INTERVAL"
#: The keys only Django reads; every other key is a core setting.
DJANGO_KEYS = frozenset({FUNCTIONS_KEY, AUTHORIZE_KEY, OUTBOX_INTERVAL_KEY})


def raw_config() -> dict[str, Any]:
    """``settings.RESONATE`` as a dict (empty when unset)."""
    value = getattr(django_settings, SETTING, None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"settings.{SETTING} must be a dict, got {type(value).__name__}")
    return dict(value)


def function_specs(config: Mapping[str, Any]) -> list[str]:
    """The ``FUNCTIONS`` entries: one ``"module[:attr]"`` string or a list of them."""
    specs = config.get(FUNCTIONS_KEY, [])
    if isinstance(specs, str):
        specs = [specs]
    if not isinstance(specs, Iterable) or not all(isinstance(s, str) and s for s in specs):
        raise ImproperlyConfigured(
            f"settings.{SETTING}[{FUNCTIONS_KEY!r}] must be a list of dotted module paths "
            f"('module' or 'module:attr'), got {specs!r}"
        )
    return list(specs)


def known_keys() -> list[str]:
    """Every key ``settings.RESONATE`` may hold: Django's own and the core settings'."""
    return sorted([*DJANGO_KEYS, *(name.upper() for name in SETTING_NAMES)])


def _known(key: object) -> bool:
    if key in DJANGO_KEYS:
        return True
    name = key.upper().removeprefix("RESONATE_").lower() if isinstance(key, str) else None
    return name in SETTING_NAMES


def unknown_keys(config: Mapping[str, Any]) -> list[Any]:
    """The keys of ``config`` resonate-web does not know, sorted."""
    return sorted((key for key in config if not _known(key)), key=repr)


def describe_unknown(unknown: Iterable[Any]) -> str:
    """``unknown key(s): 'URLS' (did you mean 'URL'?)``, a hint per key that has one."""
    unknown = list(unknown)
    hints = []
    for key in unknown:
        if isinstance(key, str):
            hint = did_you_mean(key.upper().removeprefix("RESONATE_"), known_keys())
            if hint:
                hints.append(f"{key!r}:{hint.removeprefix(';')}")
    listed = ", ".join(map(repr, unknown))
    return f"unknown key(s): {listed}" + (f" ({'; '.join(hints)})" if hints else "")


def load_settings(config: Mapping[str, Any] | None = None) -> Settings:
    """The core :class:`Settings` from ``settings.RESONATE`` and the environment."""
    config = raw_config() if config is None else config
    core = {k: v for k, v in config.items() if k not in DJANGO_KEYS}
    odd = [k for k in core if not isinstance(k, str)]
    if odd:
        raise ImproperlyConfigured(f"settings.{SETTING}: keys are strings, got {odd[0]!r}")
    unknown = unknown_keys(config)
    if unknown:
        raise ImproperlyConfigured(f"settings.{SETTING} has {describe_unknown(unknown)}")
    try:
        return Settings.load(core)
    except ConfigurationError as exc:
        raise ImproperlyConfigured(f"settings.{SETTING}: {exc}") from None


def load_exposed(specs: Iterable[str]) -> Functions:
    """Import every ``FUNCTIONS`` entry and combine them into one :class:`Functions`."""
    combined = Functions()
    for spec in specs:
        try:
            functions = load_functions(spec)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"settings.{SETTING}[{FUNCTIONS_KEY!r}]: cannot import {spec!r}: {exc}"
            ) from exc
        except ConfigurationError as exc:
            raise ImproperlyConfigured(f"settings.{SETTING}[{FUNCTIONS_KEY!r}]: {exc}") from None
        try:
            combined.include(functions)
        except ValueError as exc:
            raise ImproperlyConfigured(f"settings.{SETTING}[{FUNCTIONS_KEY!r}]: {exc}") from None
    return combined


def load_functions_of(config: Mapping[str, Any]) -> Functions:
    """What a Django gateway or worker registers: ``FUNCTIONS``, plus the internal
    function that runs ``django.tasks`` tasks (Django 6 and later)."""
    functions = load_exposed(function_specs(config))
    for more in _INCLUDED:
        functions.include(more())
    return functions


#: Functions every Django gateway and worker registers beside ``FUNCTIONS``: the app
#: config hands them in (the one that runs ``django.tasks`` tasks, on Django 6).
_INCLUDED: list[Callable[[], Functions]] = []


def include(functions: Callable[[], Functions]) -> None:
    """Register what ``functions()`` returns in every runtime built from now on."""
    if functions not in _INCLUDED:
        _INCLUDED.append(functions)


def in_django(fn: DurableFn) -> DurableFn:
    """The runtime's ``wrap=`` hook: durable functions run the way Django code expects.

    A sync function (which the runtime runs in a worker thread, never on its
    event loop) may use the ORM, with stale connections closed before and
    after, as a request does. An async function is returned unchanged (it uses
    the async ORM API).
    """
    if is_async(fn):
        return fn

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return keep_signature(call, fn)


#: What one value of ``settings.RESONATE`` builds (once per process).
State = Hosted


_lock = threading.Lock()
#: The value of ``settings.RESONATE`` the current state was built from, and the state.
_current: tuple[Any, State] | None = None
#: Set by :func:`resonate_web.django.asgi.get_asgi_application`: the server's lifespan
#: hosts the runtime on its loop, so the app's set-up starts none in a thread.
hosted_by_server = False


#: Seconds between two sweeps of the outbox, unless ``OUTBOX_INTERVAL`` says otherwise.
DEFAULT_INTERVAL = 5.0


def outbox_interval(config: Mapping[str, Any] | None = None) -> float:
    """``OUTBOX_INTERVAL``: seconds between two sweeps of the outbox (default 5)."""
    config = raw_config() if config is None else config
    value = config.get(OUTBOX_INTERVAL_KEY, DEFAULT_INTERVAL)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ImproperlyConfigured(
            f"settings.{SETTING}[{OUTBOX_INTERVAL_KEY!r}] is a number of seconds > 0, got {value!r}"
        )
    return float(value)


def load_authorize(config: Mapping[str, Any]) -> Authorize | None:
    """The ``AUTHORIZE`` hook: a dotted path (``"shop.auth.authorize"``) or a callable."""
    hook = config.get(AUTHORIZE_KEY)
    if hook is None or callable(hook):
        return hook
    if not isinstance(hook, str):
        raise ImproperlyConfigured(
            f"settings.{SETTING}[{AUTHORIZE_KEY!r}] is a dotted path or a callable, got {hook!r}"
        )
    try:
        loaded: Authorize = import_string(hook)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"settings.{SETTING}[{AUTHORIZE_KEY!r}]: cannot import {hook!r}: {exc}"
        ) from exc
    return loaded


def _build() -> State:
    config = raw_config()
    settings = load_settings(config)
    outbox_interval(config)
    functions = load_functions_of(config)
    return host(settings, functions, wrap=in_django, authorize=load_authorize(config))


def state() -> State:
    """The runtime for the current ``settings.RESONATE`` (built on first use)."""
    global _current
    source = getattr(django_settings, SETTING, None)
    current = _current
    if current is not None and current[0] is source:
        return current[1]
    with _lock:
        if _current is not None and _current[0] is not source:
            _stop_sweeper()
            _current[1].portal.close()
            _current = None
        if _current is None:
            _current = (source, _build())
        return _current[1]


def reset() -> None:
    """Stop the runtime (if one started); the next use builds a new one."""
    global _current
    with _lock:
        current, _current = _current, None
    _stop_sweeper()
    if current is not None:
        current[1].portal.close()


#: Called when the runtime is reset (the outbox's sweeper stops with it).
_ON_RESET: list[Callable[[], None]] = []


def on_reset(callback: Callable[[], None]) -> None:
    if callback not in _ON_RESET:
        _ON_RESET.append(callback)


def _stop_sweeper() -> None:
    for callback in _ON_RESET:
        callback()


def setting_changed(*, setting: str, **kwargs: Any) -> None:
    """``django.test.signals.setting_changed`` receiver (connected by the app config)."""
    if setting == SETTING:
        reset()


atexit.register(reset)
