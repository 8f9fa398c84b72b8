"""RFC 9457 problem details: one exception type, one stable slug per kind of error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

Slug = Literal[
    "invalid-json",
    "unsupported-media-type",
    "payload-too-large",
    "invalid-id",
    "invalid-wait",
    "unknown-function",
    "invalid-arguments",
    "idempotency-key-reused",
    "not-found",
    "conflict",
    "invalid-cron",
    "unauthorized",
    "forbidden",
    "backend-unavailable",
    "too-many-waiters",
    "invalid-query",
    "invalid-tags",
    "rate-limited",
]

PROBLEM_TYPE_PREFIX = "urn:resonate-web:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"

_TITLES: dict[Slug, tuple[int, str]] = {
    "invalid-json": (400, "Invalid JSON"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "payload-too-large": (413, "Payload too large"),
    "invalid-id": (400, "Invalid id"),
    "invalid-wait": (400, "Invalid wait"),
    "unknown-function": (404, "Unknown function"),
    "invalid-arguments": (422, "Invalid arguments"),
    "idempotency-key-reused": (422, "Idempotency key reused"),
    "not-found": (404, "Not found"),
    "conflict": (409, "Conflict"),
    "invalid-cron": (400, "Invalid cron expression"),
    "unauthorized": (401, "Unauthorized"),
    "forbidden": (403, "Forbidden"),
    "backend-unavailable": (503, "Backend unavailable"),
    "too-many-waiters": (503, "Too many waiters"),
    "invalid-query": (400, "Invalid query"),
    "invalid-tags": (400, "Invalid tags"),
    "rate-limited": (429, "Rate limited"),
}


if tuple(_TITLES) != get_args(Slug):  # pragma: no cover - caught at import, in every test
    raise AssertionError("problems._TITLES must list exactly the Slug literal's slugs, in order")


class Problem(Exception):
    """An error the HTTP contract names: rendered as ``application/problem+json``."""

    def __init__(
        self,
        slug: Slug,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.slug: Slug = slug
        self.status, self.title = _TITLES[slug]
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})

    def body(self, instance: str) -> dict[str, Any]:
        return {
            "type": PROBLEM_TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extensions,
        }


def status_of(slug: Slug) -> int:
    return _TITLES[slug][0]


def all_slugs() -> list[Slug]:
    """Every slug of the contract: the one source the titles, the statuses and the
    HTTP client's exception classes are held to."""
    return list(get_args(Slug))


def field_path(loc: Sequence[Any]) -> str:
    """A validation error's location as a reader names it: ``b``, ``rest[0]``, ``order.qty``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "arguments"
