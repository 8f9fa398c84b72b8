"""Access control, the public face: the ``authorize`` hook's types and the two
ready-made hooks (a static bearer token, JWT verification); see docs/security.md."""

from resonate_web._gateway.auth import (
    Authorize,
    Principal,
    authorize_from_settings,
    forbidden,
    unauthorized,
)

__all__ = ["Authorize", "Principal", "authorize_from_settings", "forbidden", "unauthorized"]
