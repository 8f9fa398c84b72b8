"""System checks (``manage.py check``) for ``settings.RESONATE`` and the URLs.

======================  ================================================================
``resonate_web.E001``   ``RESONATE`` is not a dict, or has keys resonate-web does not know
``resonate_web.E002``   a setting has a value the settings parser refuses
``resonate_web.E003``   a ``FUNCTIONS`` entry cannot be imported or holds no ``Functions``
``resonate_web.E004``   a function is dispatched without a valid target worker group
``resonate_web.E005``   another URL pattern answers a path of the ``resonate`` routes
``resonate_web.W001``   ``PREFIX`` says one mount, the URLconf serves the routes at another
``resonate_web.W002``   a function is dispatched but no worker can ever receive it (the
                        embedded backend lives inside this process)
======================  ================================================================
"""

from __future__ import annotations

from typing import Any

from django.core import checks  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.urls import NoReverseMatch, Resolver404, resolve, reverse  # type: ignore[import-untyped]

from resonate_web._gateway.router import ROUTES
from resonate_web.django import conf
from resonate_web.settings import ConfigurationError, Settings

_SAMPLE = {"name": "resonate-check", "id": "resonate-check", "asset": "app.js"}


def check_resonate(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        config = conf.raw_config()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="resonate_web.E001")]
    errors = _unknown_keys(config)
    if errors:
        return errors
    try:
        settings = conf.load_settings(config)
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="resonate_web.E002")]
    errors = _functions(config, settings)
    return errors + _urls(config, settings)


def _unknown_keys(config: dict[str, Any]) -> list[checks.CheckMessage]:
    unknown = conf.unknown_keys(config)
    if not unknown:
        return []
    return [
        checks.Error(
            f"settings.{conf.SETTING} has {conf.describe_unknown(unknown)}",
            hint=f"known keys: {', '.join(conf.known_keys())}",
            id="resonate_web.E001",
        )
    ]


def _functions(config: dict[str, Any], settings: Any) -> list[checks.CheckMessage]:
    try:
        functions = conf.load_exposed(conf.function_specs(config))
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint="FUNCTIONS lists modules ('module' or 'module:attr') that hold a "
                "resonate_web.Functions",
                id="resonate_web.E003",
            )
        ]
    errors: list[checks.CheckMessage] = []
    try:
        exposed = functions.resolve(settings)
    except ValueError as exc:
        return [checks.Error(str(exc), id="resonate_web.E004")]
    for exp in exposed.values():
        if exp.mode != "dispatch":
            continue
        try:
            Settings.load(target=exp.target, environ={})
        except ConfigurationError as exc:
            errors.append(
                checks.Error(
                    f"function {exp.name!r} is dispatched without a valid target group: {exc}",
                    hint="pass target='group' to expose()/expose_remote(), or set "
                    "RESONATE['TARGET']",
                    id="resonate_web.E004",
                )
            )
        if settings.backend == "embedded":
            errors.append(
                checks.Warning(
                    f"function {exp.name!r} is dispatched to worker group {exp.target!r}, "
                    "but no worker can reach the embedded backend: it lives inside this "
                    "process, so the invocation would stay pending",
                    hint="set RESONATE['URL'] to a Resonate server or a postgresql:// DSN, "
                    "or expose the function's code here to run it inline",
                    id="resonate_web.W002",
                )
            )
    return errors


def _urls(config: dict[str, Any], settings: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    mounts = set()
    for route in ROUTES:
        params = {k: v for k, v in _SAMPLE.items() if "{" + k + "}" in route.path}
        try:
            url = reverse(f"resonate:{route.name}", kwargs=params)
        except NoReverseMatch:
            return []  # the routes are not in the URLconf: only the client is used
        mounts.add(url[: -len(route.path.format_map(params))])
        try:
            match = resolve(url)
        except Resolver404:  # pragma: no cover - reverse() found it
            continue
        # Routes sharing a path (by method) resolve to the first one's pattern.
        sharing = {other.name for other in ROUTES if other.path == route.path}
        if match.namespace != "resonate" or match.url_name not in sharing:
            errors.append(
                checks.Error(
                    f"the resonate route {route.name!r} ({url}) is answered by another URL "
                    f"pattern ({match.view_name or match.route!r}): the prefix collides",
                    hint="include resonate_web.django.urls under a prefix of its own, "
                    "or before the pattern that shadows it",
                    id="resonate_web.E005",
                )
            )
    if "PREFIX" in {k.upper().removeprefix("RESONATE_") for k in config}:
        for mount in sorted(mounts - {settings.prefix}):
            errors.append(
                checks.Warning(
                    f"RESONATE['PREFIX'] is {settings.prefix!r}, but the URLconf serves the "
                    f"routes at {mount!r}",
                    hint="the include() decides where the routes are; make PREFIX match it "
                    "or drop it",
                    id="resonate_web.W001",
                )
            )
    return errors
