"""One frozen :class:`Settings`, built one way from every source.

Keyword arguments win over a framework's config mapping (a Flask ``config`` or a
Django ``RESONATE`` dict), which wins over the environment (``RESONATE_*``).
Every value goes through the same parser, so a bad value is reported the same
way whichever source it came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote

Backend = Literal["embedded", "http", "postgres"]
PromisePolicy = Literal["awaited", "any", "off"]

logger = logging.getLogger("resonate_web")

#: ``RESONATE_*`` variables that others read: the SDK's (a server address and
#: token) and resonate-web's own outside :class:`Settings`.
_OTHER_VARIABLES = frozenset(
    {"RESONATE_HOST", "RESONATE_PORT", "RESONATE_SCHEME", "RESONATE_LOG_LEVEL"}
)
_warned: set[str] = set()


class ConfigurationError(ValueError):
    """A setting has a value resonate-web cannot use."""


def did_you_mean(word: str, known: Iterable[str], *, show: Callable[[str], str] = repr) -> str:
    """``"; did you mean 'X'?"`` naming the closest of ``known`` to ``word``, or ``""``.

    The one hint for every unknown name: environment variables, config keys
    (Flask's, Django's ``RESONATE``), keyword settings and function names.
    """
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {show(close[0])}?" if close else ""


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = _str(value).strip()
    return text or None


def _secret(value: Any) -> str | None:
    """A secret: unset (``None``) or a non-empty string. An empty one is refused, never
    read as unset: ``RESONATE_AUTH_TOKEN=`` would otherwise turn authentication off."""
    if value is None:
        return None
    text = _str(value).strip()
    if not text:
        raise ConfigurationError(
            "empty; an empty secret is refused rather than read as unset (which would "
            "turn authentication off): give it a value, or remove the setting"
        )
    return text


def _positive_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigurationError("expected a number, got a boolean")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigurationError(f"expected a finite number > 0, got {value!r}")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigurationError("expected an integer, got a boolean")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"expected an integer, got {value!r}") from None
    if number <= 0 or (isinstance(value, float) and value != number):
        raise ConfigurationError(f"expected an integer > 0, got {value!r}")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigurationError(f"expected a boolean, got {value!r}")


def _prefix(value: Any) -> str:
    text = _str(value).strip()
    if text in {"", "/"}:
        return ""
    if not text.startswith("/") or text.endswith("/") or "//" in text:
        raise ConfigurationError(
            f"a mount prefix starts with '/' and does not end with one, got {value!r}"
        )
    return text


def _group(value: Any) -> str:
    text = _str(value).strip()
    if not text or any(c in text for c in "/@: "):
        raise ConfigurationError(f"a group is a non-empty name without '/@: ', got {value!r}")
    return text


def _promise_policy(value: Any) -> str:
    text = _str(value).strip().lower()
    if text not in ("awaited", "any", "off"):
        raise ConfigurationError(f"expected 'awaited', 'any' or 'off', got {value!r}")
    return text


def _algorithms(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(a, str) for a in items):
        raise ConfigurationError(f"expected algorithm names (HS256,RS256,...), got {value!r}")
    names = tuple(a.strip() for a in items if a.strip())
    if any(name.lower() == "none" for name in names):
        raise ConfigurationError("'none' is not an algorithm a token may be accepted with")
    return names


def _url(value: Any) -> str | None:
    text = _opt_str(value)
    if text is None:
        return None
    if not text.startswith(("http://", "https://", "postgresql://", "postgres://")):
        raise ConfigurationError(
            f"expected an http(s):// Resonate server URL or a postgresql:// DSN, got {text!r}"
        )
    return text.rstrip("/") if text.startswith("http") else text


@dataclass(frozen=True)
class Settings:
    """Everything resonate-web needs to know, validated.

    ``url``: ``None`` runs on the SDK's embedded in-process backend; an
    ``http(s)://`` URL talks to a Resonate server; a ``postgresql://`` DSN uses
    the database through ``resonate-pg`` (``pip install 'resonate-web[pg]'``).
    """

    url: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    group: str = "gateway"
    target: str = "workers"
    prefix: str = "/resonate"
    wait_cap: float = 30.0
    body_limit: int = 1024 * 1024
    json_depth: int = 64
    backend_timeout: float = 5.0
    shutdown_timeout: float = 5.0
    max_waiters: int = 1000
    lease_ttl: float = 15.0
    promises: PromisePolicy = "awaited"
    embedded_retention: float = 3600.0
    embedded_keep: int = 10_000
    auth_token: str | None = dataclasses.field(default=None, repr=False)
    auth_jwt_key: str | None = dataclasses.field(default=None, repr=False)
    auth_jwt_algorithms: tuple[str, ...] = ()
    auth_jwt_audience: str | None = None
    auth_jwt_issuer: str | None = None
    keepalive: float = 15.0
    ui: bool = False
    #: Per function, limits replacing those its code declares (``docs/flow-control.md``).
    limits: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def display_url(self) -> str:
        """:attr:`url` without credentials (``postgresql://app:***@db/app``), for logs."""
        return mask_url(self.url) if self.url else "embedded"

    @property
    def backend(self) -> Backend:
        if self.url is None:
            return "embedded"
        if self.url.startswith(("postgresql://", "postgres://")):
            return "postgres"
        return "http"

    @classmethod
    def load(
        cls,
        config: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from keyword arguments, a config mapping and the environment.

        ``config`` keys are the field names in upper case (``URL``, ``GROUP``, ...),
        optionally prefixed with ``RESONATE_`` (as a Flask config holds them).
        Environment variables are ``RESONATE_<NAME>``. Unknown keys in ``config``
        and ``overrides`` are errors; an unknown ``RESONATE_*`` variable is a
        warning naming the closest known one (a typo such as ``RESONATE_UR``
        would otherwise leave the app on the embedded backend, silently).
        """
        env = os.environ if environ is None else environ
        _warn_unknown_variables(env)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            env_value = env.get(f"RESONATE_{field.name.upper()}")
            if env_value is not None:
                values[field.name] = env_value
        for key, value in (config or {}).items():
            name = key.upper().removeprefix("RESONATE_").lower()
            if name not in _PARSERS:
                hint = did_you_mean(name, _PARSERS, show=functools.partial(_spelled, key))
                raise ConfigurationError(f"unknown resonate-web setting {key!r}{hint}")
            values[name] = value
        for name, value in overrides.items():
            if name not in _PARSERS:
                hint = did_you_mean(name, _PARSERS)
                raise ConfigurationError(f"unknown resonate-web setting {name!r}{hint}")
            if value is not None:
                values[name] = value
        parsed: dict[str, Any] = {}
        for name, value in values.items():
            try:
                parsed[name] = _PARSERS[name](value)
            except ConfigurationError as exc:
                raise ConfigurationError(f"setting {name.upper()}: {exc}") from None
        return cls(**parsed)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"expected a positive integer, got {value!r}")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"expected a positive number of seconds, got {value!r}")
    return float(value)


_RATE_FIELDS = frozenset({"limit", "period", "on_limit"})


def _limits(value: Any) -> dict[str, dict[str, Any]]:
    """``LIMITS``: per function, the limits that replace the declared ones::

        {"export": {"concurrency": 1, "rate": {"limit": 10, "period": 60}},
         "reindex": {"debounce": 30}, "charge": {"rate": null}}

    ``null`` removes a declared limit; a limit keeps the key its code declares.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise ConfigurationError("expected an object of function names to their limits")
    parsed: dict[str, dict[str, Any]] = {}
    for name, limits in value.items():
        if not isinstance(limits, Mapping):
            raise ConfigurationError(f"{name}: expected an object of limits")
        unknown = sorted(set(limits) - {"concurrency", "rate", "debounce"})
        if unknown:
            raise ConfigurationError(
                f"{name}: unknown limit(s) {', '.join(unknown)} "
                "(known: concurrency, rate, debounce)"
            )
        entry: dict[str, Any] = {}
        try:
            for option, given in limits.items():
                if given is None:
                    entry[option] = None
                elif option == "concurrency":
                    entry[option] = _count(given)
                elif option == "debounce":
                    entry[option] = _seconds(given)
                else:
                    if not isinstance(given, Mapping) or set(given) - _RATE_FIELDS:
                        raise ConfigurationError(
                            'rate: expected {"limit": N, "period": seconds, "on_limit": "wait"}'
                        )
                    rate: dict[str, Any] = {
                        "limit": _count(given.get("limit")),
                        "period": _seconds(given.get("period")),
                    }
                    if "on_limit" in given:
                        if given["on_limit"] not in ("wait", "reject"):
                            raise ConfigurationError("rate: on_limit is 'wait' or 'reject'")
                        rate["on_limit"] = given["on_limit"]
                    entry[option] = rate
        except ConfigurationError as exc:
            raise ConfigurationError(f"{name}: {exc}") from None
        parsed[str(name)] = entry
    return parsed


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "url": _url,
    "token": _secret,
    "group": _group,
    "target": _group,
    "prefix": _prefix,
    "wait_cap": _positive_float,
    "body_limit": _positive_int,
    "json_depth": _positive_int,
    "backend_timeout": _positive_float,
    "shutdown_timeout": _positive_float,
    "max_waiters": _positive_int,
    "lease_ttl": _positive_float,
    "promises": _promise_policy,
    "embedded_retention": _positive_float,
    "embedded_keep": _positive_int,
    "auth_token": _secret,
    "auth_jwt_key": _secret,
    "auth_jwt_algorithms": _algorithms,
    "auth_jwt_audience": _opt_str,
    "auth_jwt_issuer": _opt_str,
    "keepalive": _positive_float,
    "ui": _bool,
    "limits": _limits,
}

SETTING_NAMES = frozenset(_PARSERS)


def _spelled(like: str, name: str) -> str:
    """Setting ``name`` spelled as the config key ``like`` is (``'RESONATE_URL'``, ``'URL'``)."""
    return repr(("RESONATE_" if like.upper().startswith("RESONATE_") else "") + name.upper())


VARIABLES = frozenset(f"RESONATE_{name.upper()}" for name in SETTING_NAMES) | _OTHER_VARIABLES


def _warn_unknown_variables(env: Mapping[str, str]) -> None:
    for key in env:
        if not key.startswith("RESONATE_") or key in VARIABLES or key in _warned:
            continue
        _warned.add(key)
        hint = did_you_mean(key, VARIABLES, show=str)
        logger.warning(
            "resonate-web: ignoring unknown environment variable %s%s (known: %s)",
            key,
            hint,
            ", ".join(sorted(VARIABLES)),
        )


_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?=@)", re.I)
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^&\s]+)", re.I)


def passwords(dsn: str) -> tuple[str, ...]:
    """Every spelling of the passwords ``dsn`` holds (raw, decoded, re-encoded)."""
    found: set[str] = set()
    for pattern in (_URL_PASSWORD, _KV_PASSWORD):
        for match in pattern.finditer(dsn):
            raw = match.group("pw").strip("'")
            if raw:
                found.update({raw, unquote(raw), quote(unquote(raw), safe="")})
    return tuple(sorted(found, key=len, reverse=True))


def mask(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every password in it replaced by ``***``: in URLs, in
    ``password=...`` pairs, and anywhere one of ``secrets`` appears."""
    for secret in secrets:
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)
    return _KV_PASSWORD.sub(lambda m: m.group("head") + "***", text)


def mask_url(url: str) -> str:
    """``url`` (a server URL or a DSN) for display, its password replaced by ``***``."""
    return mask(url, passwords(url))
