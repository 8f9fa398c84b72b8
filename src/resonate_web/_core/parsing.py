"""Strict parsing of what arrives over HTTP: JSON bodies, ids, ``wait``, headers."""

from __future__ import annotations

import json
import math
import re
import secrets
from typing import Any, NoReturn

from resonate_web.problems import Problem

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,255}")
# Promise ids created inside a workflow extend their root with ':' (``root:1.2``).
_PROMISE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:-]{0,511}")
_SF_STRING_RE = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')


def _invalid_json(detail: str) -> NoReturn:
    raise Problem("invalid-json", detail)


def _reject_constant(name: str) -> NoReturn:
    _invalid_json(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _invalid_json(f"number {text[:40]} overflows")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            _invalid_json(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(body: bytes, *, max_depth: int) -> Any:
    """Parse ``body`` as strict JSON (RFC 8259): no NaN/Infinity, no duplicate keys."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        _invalid_json(f"body is not valid UTF-8 (byte {exc.start})")
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_no_duplicates,
        )
    except RecursionError:
        _invalid_json(f"JSON nests deeper than {max_depth} levels")
    except json.JSONDecodeError as exc:
        _invalid_json(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    # Each level of nesting opens a bracket: a body with no more of them than the
    # limit (brackets inside strings only overcount) needs no walk.
    if body.count(b"[") + body.count(b"{") > max_depth and _depth_exceeds(value, max_depth):
        _invalid_json(f"JSON nests deeper than {max_depth} levels")
    return value


def validate_id(value: str, *, what: str = "id") -> str:
    if not _ID_RE.fullmatch(value) or ".." in value:
        raise Problem(
            "invalid-id",
            f"{what} must be 1-256 characters of A-Z a-z 0-9 . _ ~ -, start with a letter "
            "or digit and not contain '..'",
        )
    return value


def validate_promise_id(value: str) -> str:
    if not _PROMISE_ID_RE.fullmatch(value) or ".." in value:
        raise Problem(
            "invalid-id",
            "a promise id is characters of A-Z a-z 0-9 . _ ~ - :, starting with a letter "
            "or digit, without '..'",
        )
    return value


def idempotency_key(header: str) -> str:
    """Read an ``Idempotency-Key`` header: a bare token or an RFC 8941 string."""
    text = header.strip(" \t")
    if text.startswith('"'):
        match = _SF_STRING_RE.fullmatch(text)
        if match is None:
            raise Problem("invalid-id", "Idempotency-Key is not a valid quoted string")
        text = re.sub(r"\\(.)", r"\1", match.group(1))
    return validate_id(text, what="Idempotency-Key")


_TAG_KEY_RE = re.compile(r"[a-z0-9_.-]{1,64}")
#: At most this many tags on an invocation; a value at most this long.
MAX_TAGS = 16
MAX_TAG_VALUE = 256


def validate_tags(value: Any) -> dict[str, str]:
    """A user's tags (contract v3): at most 16; keys 1-64 characters of ``a-z 0-9 _ . -``
    not starting with ``resonate``; values strings of at most 256 characters. Else 400
    ``invalid-tags``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Problem(
            "invalid-tags", 'tags are a JSON object of strings, as in {"customer": "c-7"}'
        )
    if len(value) > MAX_TAGS:
        raise Problem("invalid-tags", f"at most {MAX_TAGS} tags, got {len(value)}")
    for key, tag in value.items():
        if not _TAG_KEY_RE.fullmatch(key) or key.startswith("resonate"):
            raise Problem(
                "invalid-tags",
                f"tag key {key[:80]!r} is not 1-64 characters of a-z 0-9 _ . - "
                "(and may not start with 'resonate')",
            )
        if not isinstance(tag, str) or len(tag) > MAX_TAG_VALUE:
            raise Problem(
                "invalid-tags",
                f"tag {key!r}: a value is a string of at most {MAX_TAG_VALUE} characters",
            )
    return dict(value)


#: A start's priority (flow control): an integer in this range, higher first.
MAX_PRIORITY = 1000


def validate_priority(value: Any) -> int | None:
    """A start's ``priority``: absent, or an integer from -1000 to 1000 (400 otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_PRIORITY:
        raise Problem(
            "invalid-json",
            f"'priority' must be an integer from -{MAX_PRIORITY} to {MAX_PRIORITY} "
            f"(higher runs first among waiting invocations), got {value!r}",
        )
    return value


def new_id() -> str:
    """An unguessable invocation id (128 random bits)."""
    return secrets.token_hex(16)


def parse_wait(raw: str | None, cap: float) -> float:
    """``?wait=SECONDS``: absent is 0; a finite number >= 0, clamped to ``cap``."""
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or raw.strip() != raw or "_" in raw:
        raise Problem("invalid-wait", f"wait must be a finite number of seconds >= 0, got {raw!r}")
    return min(value, cap)


def media_type_is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or ("/" in media and media.endswith("+json"))


def json_object(
    body: bytes,
    content_type: str | None,
    *,
    body_limit: int,
    max_depth: int,
    members: frozenset[str] | None = None,
    hint: str = "",
) -> dict[str, Any]:
    """The one rule for a request body, on every route that takes one: a JSON object
    (``{}`` when empty). 413 over ``body_limit``, 415 when not sent as JSON, 400
    when it is not JSON or not an object, or (with ``members``) when it holds a
    member not among them (``hint`` says what to send)."""
    if len(body) > body_limit:
        raise Problem("payload-too-large", f"the body exceeds the limit of {body_limit} bytes")
    if not body:
        return {}
    if not media_type_is_json(content_type):
        raise Problem("unsupported-media-type", "send the body as application/json (or +json)")
    payload = parse_json(body, max_depth=max_depth)
    if not isinstance(payload, dict):
        raise Problem("invalid-json", "the body must be a JSON object")
    if members is not None:
        unknown = sorted(set(payload) - members)
        if unknown:
            said = f"unknown member(s) {', '.join(map(repr, unknown))}"
            raise Problem("invalid-json", f"{said}: {hint}" if hint else said)
    return payload
