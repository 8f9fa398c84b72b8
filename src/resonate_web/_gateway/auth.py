"""Who may call the routes, and which ids are theirs.

One hook, ``authorize(request, action, resource)``, is consulted on every route
but ``/health``. It returns a :class:`Principal` (or ``None``: anyone may), or
raises :class:`~resonate_web.Problem` ``unauthorized`` (401, with
``WWW-Authenticate: Bearer``) or ``forbidden`` (403). Two hooks come ready,
configured like any setting:

- a static bearer token (``RESONATE_AUTH_TOKEN``), compared in constant time;
- JWT verification with PyJWT (``RESONATE_AUTH_JWT_KEY``, an HMAC secret or a
  PEM public key, with ``RESONATE_AUTH_JWT_ALGORITHMS`` required beside it, and
  optional ``RESONATE_AUTH_JWT_AUDIENCE`` and ``RESONATE_AUTH_JWT_ISSUER``).

A principal may carry an id prefix (the JWT's ``prefix`` claim, as the
Resonate server's own tokens do): every id it names is stored as
``prefix + id`` and shown back without the prefix, so no principal can read,
list, stream, replay, cancel or settle another's work; another's id is a 404.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from resonate_web._gateway.contract import Principal, Request, forbidden
from resonate_web.problems import Problem
from resonate_web.settings import ConfigurationError, Settings

__all__ = ["Authorize", "Principal", "authorize_from_settings", "call_hook", "forbidden"]


#: ``authorize(request, action, resource)``: ``action`` is the route's name
#: (``start``, ``status``, ``resolve``, ...), ``resource`` the function name or
#: id the route acts on (``None`` for ``list``). Sync or async.
Authorize = Callable[["Request", str, str | None], "Principal | Awaitable[Principal | None] | None"]


def unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return Problem("unauthorized", detail, headers={"WWW-Authenticate": challenge})


def bearer(request: Request) -> str:
    """The request's bearer token, or a 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise unauthorized("this API needs a bearer token (Authorization: Bearer ...)")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("the Authorization header is not 'Bearer <token>'", "invalid_request")
    return token.strip()


def token_hook(expected: str) -> Authorize:
    """The static token policy: one shared secret, compared in constant time."""
    wanted = expected.encode()

    def authorize(request: Request, action: str, resource: str | None) -> Principal:
        if not secrets.compare_digest(bearer(request).encode(), wanted):
            raise unauthorized("the bearer token is not valid", "invalid_token")
        return Principal(subject="token")

    return authorize


def jwt_hook(settings: Settings) -> Authorize:
    """The JWT policy: signature, algorithm, expiry, not-before, audience, issuer."""
    try:
        import jwt
    except ImportError:
        raise ConfigurationError(
            "RESONATE_AUTH_JWT_KEY needs PyJWT: pip install 'resonate-web[jwt]'"
        ) from None
    algorithms = list(settings.auth_jwt_algorithms)
    if not algorithms:
        raise ConfigurationError(
            "RESONATE_AUTH_JWT_ALGORITHMS is required with RESONATE_AUTH_JWT_KEY "
            "(for example HS256, or RS256 with a PEM public key)"
        )
    key = settings.auth_jwt_key or ""
    options = {"require": ["exp"], "verify_aud": settings.auth_jwt_audience is not None}

    def authorize(request: Request, action: str, resource: str | None) -> Principal:
        token = bearer(request)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=settings.auth_jwt_audience,
                issuer=settings.auth_jwt_issuer,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired", "invalid_token") from None
        except jwt.ImmatureSignatureError:
            raise unauthorized("the token is not valid yet", "invalid_token") from None
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"the token is not valid: {exc}", "invalid_token") from None
        prefix = claims.get("prefix", "")
        if not isinstance(prefix, str):
            raise forbidden("the token's prefix claim is not a string")
        subject = claims.get("sub")
        return Principal(subject=str(subject) if subject else None, prefix=prefix, claims=claims)

    return authorize


def authorize_from_settings(settings: Settings) -> Authorize | None:
    """The ready-made policy the settings configure, or ``None`` (anyone may call)."""
    if settings.auth_token and settings.auth_jwt_key:
        raise ConfigurationError(
            "set RESONATE_AUTH_TOKEN or RESONATE_AUTH_JWT_KEY, not both "
            "(or pass your own authorize hook)"
        )
    if settings.auth_token:
        return token_hook(settings.auth_token)
    if settings.auth_jwt_key:
        return jwt_hook(settings)
    return None


async def call_hook(
    hook: Authorize, request: Request, action: str, resource: str | None
) -> Principal | None:
    """Run a sync or async hook; whatever else it raises is its own bug (a 500)."""
    result = hook(request, action, resource)
    if inspect.isawaitable(result):
        result = await result
    if result is not None and not isinstance(result, Principal):
        raise TypeError(f"an authorize hook returns a Principal or None, not {result!r}")
    return result
