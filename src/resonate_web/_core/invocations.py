"""Reading invocations from the backend as data: status documents, never objects.

The gateway never unpickles what it reads (a value a worker wrote is data, not
code): a rejection's exception class name is read from the pickle's opcodes
with :mod:`pickletools`, which disassembles without executing anything.
"""

from __future__ import annotations

import base64
import functools
import pickletools
from datetime import UTC, datetime
from typing import Any, Literal

from resonate.types import PromiseRecord

from resonate_web._core import sdk as _sdk
from resonate_web._core import search as _search

Status = Literal["pending", "resolved", "rejected", "canceled", "timedout"]

_STATES: dict[str, Status] = {
    "pending": "pending",
    "resolved": "resolved",
    "rejected": "rejected",
    "rejected_canceled": "canceled",
    "rejected_timedout": "timedout",
}

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING"}


def exception_class_path(pickled_b64: str) -> str | None:
    """``module.QualName`` of the class a pickled exception would load, read without
    loading it."""
    try:
        data = base64.b64decode(pickled_b64, validate=True)
        strings: list[str] = []
        for opcode, arg, _pos in pickletools.genops(data):
            if opcode.name in _STRING_OPS and isinstance(arg, str):
                strings.append(arg)
            elif opcode.name == "STACK_GLOBAL":
                return ".".join(strings[-2:]) if strings else None
            elif opcode.name in {"GLOBAL", "INST"} and isinstance(arg, str):
                return arg.replace(" ", ".", 1)
    except Exception:
        return None
    return None


def exception_class_name(pickled_b64: str) -> str | None:
    """The class name a pickled exception would load, read without loading it."""
    path = exception_class_path(pickled_b64)
    return path.rsplit(".", 1)[-1] if path else None


def exception_attribute(pickled_b64: str, name: str) -> str | None:
    """The string attribute ``name`` a pickled exception carries in its state (its
    ``__dict__``), read without loading it."""
    try:
        data = base64.b64decode(pickled_b64, validate=True)
        strings = [
            arg
            for opcode, arg, _pos in pickletools.genops(data)
            if opcode.name in _STRING_OPS and isinstance(arg, str)
        ]
    except Exception:
        return None
    for index, value in enumerate(strings[:-1]):
        if value == name:
            return strings[index + 1]
    return None


def error_attribute(value: Any, name: str) -> str | None:
    """:func:`exception_attribute` of the exception a rejection value holds."""
    pickled = value.get(_sdk.PICKLE_KEY) if isinstance(value, dict) else None
    return exception_attribute(pickled, name) if isinstance(pickled, str) else None


def error_class_path(value: Any) -> str | None:
    """``module.QualName`` of the exception a rejection value holds, if it names one."""
    pickled = value.get(_sdk.PICKLE_KEY) if isinstance(value, dict) else None
    return exception_class_path(pickled) if isinstance(pickled, str) else None


def error_of(value: Any) -> dict[str, str]:
    """``{"type", "message"}`` for a rejection value as the SDK stores it."""
    if isinstance(value, dict):
        message = value.get("message")
        pickled = value.get(_sdk.PICKLE_KEY)
        type_name = exception_class_name(pickled) if isinstance(pickled, str) else None
        return {
            "type": type_name or "Error",
            "message": message if isinstance(message, str) else str(value),
        }
    return {"type": "Error", "message": "" if value is None else str(value)}


def function_of(record: PromiseRecord) -> str | None:
    """The function a root invocation runs, or ``None`` if ``record`` is not one."""
    data = record.param.data
    if isinstance(data, dict) and isinstance(data.get("func"), str):
        return str(data["func"])
    return None


def call_of(record: PromiseRecord) -> tuple[str, int, list[Any], dict[str, Any]] | None:
    """``(function, version, args, kwargs)`` as stored, for replay comparison."""
    data = record.param.data
    if not isinstance(data, dict) or not isinstance(data.get("func"), str):
        return None
    args = data.get("args") or []
    kwargs = data.get("kwargs") or {}
    version = data.get("version", 1)
    return data["func"], version, list(args), dict(kwargs)


def status_of(record: PromiseRecord) -> Status:
    return status_of_state(record.state)


def status_of_state(state: str) -> Status:
    """The status document's ``status`` for a promise state."""
    return _STATES.get(state, "pending")


def is_external(record: PromiseRecord) -> bool:
    return record.tags.get(_sdk.EXTERNAL_TAG) == "true"


@functools.lru_cache(maxsize=4096)
def iso(ms: int | None) -> str | None:
    """Unix milliseconds as ISO-8601 UTC (``2026-11-26T10:00:00.123Z``)."""
    if not ms:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document(
    record: PromiseRecord,
    *,
    public_id: str,
    self_link: str,
    awaiting: list[str] | None = None,
    failure: dict[str, Any] | None = None,
    scope: str = "",
    waiting_for: str | None = None,
) -> dict[str, Any]:
    """The status document for ``record`` (see the HTTP contract), shown to a caller
    whose ids are stored under ``scope``. ``waiting_for``: why a pending invocation
    has not begun (flow control: ``concurrency``, ``rate``, ``debounce``)."""
    status = status_of(record)
    doc: dict[str, Any] = {"id": public_id, "function": function_of(record), "status": status}
    if status == "resolved":
        doc["result"] = record.value.data
    elif status == "rejected":
        doc["error"] = error_of(record.value.data)
    if status == "pending" and awaiting:
        doc["awaiting"] = awaiting
    if status == "pending" and failure:
        doc.update(failure)  # attempts, last_error
    if status == "pending" and waiting_for:
        doc["waiting_for"] = waiting_for
    doc["tags"] = _search.user_tags(record.tags)
    rerun_of = record.tags.get(_search.RERUN_TAG)
    if rerun_of is not None:
        doc["rerun_of"] = rerun_of.removeprefix(scope)
    doc["created_at"] = iso(record.created_at)
    if status != "pending":
        doc["settled_at"] = iso(record.settled_at or record.timeout_at)
    doc["links"] = {
        "self": self_link,
        "events": f"{self_link}/events",
        "tree": f"{self_link}/tree",
        "cancel": f"{self_link}/cancel",
    }
    return doc
