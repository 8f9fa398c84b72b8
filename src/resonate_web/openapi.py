"""The routes' OpenAPI 3.1 document, written once for every adapter.

One operation per exposed function (``POST /functions/add``), whose request
body is that function's parameters, whose description is its docstring.
Every response listed is one the route sends; every problem is
``application/problem+json``. FastAPI merges these paths into the app's own
document (``/docs``); Flask and Django serve the document at
``{prefix}/openapi.json``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from resonate_web.exposure import Exposed
from resonate_web.models import (
    FunctionList,
    Health,
    ProblemDetails,
    ScheduleDocument,
    ScheduleList,
    ScheduleRequest,
    StatusDocument,
)
from resonate_web.problems import PROBLEM_CONTENT_TYPE

_REF = "#/components/schemas/{model}"
_MODELS = (
    FunctionList,
    StatusDocument,
    Health,
    ProblemDetails,
    ScheduleRequest,
    ScheduleDocument,
    ScheduleList,
)

_PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON, id or wait (problem+json)",
    404: "Not found (problem+json)",
    413: "Body over the size limit (problem+json)",
    409: "A schedule with this id and another definition exists (problem+json)",
    415: "The body is not JSON (problem+json)",
    422: "Arguments do not bind to the function, or the id names another call (problem+json)",
    503: "The backend did not answer, or too many requests wait (problem+json, Retry-After)",
}


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _problems(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": _PROBLEM_DESCRIPTIONS[code],
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _ref(ProblemDetails)}},
        }
        for code in codes
    }


def _json(model: type[Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


_WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "Seconds to hold the response until the invocation settles (capped)",
    "schema": {"type": "number", "minimum": 0},
}
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,255}$"
_ID_PATH = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Invocation id",
    "schema": {"type": "string", "pattern": _ID_PATTERN},
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds", "schema": {"type": "integer"}}}


def _arguments(exposed: Exposed, schemas: dict[str, Any]) -> dict[str, Any]:
    """The request body of ``POST /functions/{name}`` for ``exposed``."""
    if exposed.binder is None:
        args: dict[str, Any] = {"type": "array", "description": "Positional arguments"}
        kwargs: dict[str, Any] = {"type": "object", "description": "Keyword arguments"}
    else:
        params = exposed.binder.json_schema()
        # Nested models ($defs) become components, named after the function.
        prefix = f"{exposed.name}."
        text = json.dumps(params).replace('"#/$defs/', f'"#/components/schemas/{prefix}')
        params = json.loads(text)
        for name, schema in params.pop("$defs", {}).items():
            schemas[prefix + name] = schema
        properties: dict[str, Any] = params.get("properties", {})
        positional = [
            p.name
            for p in exposed.binder.signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        args = {
            "type": "array",
            "description": f"Positional arguments: {', '.join(positional) or 'none'}",
            "prefixItems": [properties[name] for name in positional if name in properties],
        }
        kwargs = {
            "type": "object",
            "description": "Keyword arguments (each parameter once, by position or by name)",
            "properties": properties,
            "additionalProperties": False,
        }
    return {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"args": args, "kwargs": kwargs},
                    "additionalProperties": False,
                }
            }
        },
    }


def _start(exposed: Exposed, tags: list[str], schemas: dict[str, Any]) -> dict[str, Any]:
    where = f"on a worker of group `{exposed.target}`" if exposed.target else "in this process"
    description = exposed.description or ""
    return {
        "tags": tags,
        "operationId": f"resonate_start_{exposed.name.replace('-', '_').replace('.', '_')}",
        "summary": f"Start {exposed.name}",
        "description": f"{description}\n\nRuns {where} (version {exposed.version}).".strip(),
        "parameters": [
            _WAIT,
            {
                "name": "id",
                "in": "query",
                "required": False,
                "description": "Invocation id (the Idempotency-Key header wins); default: random",
                "schema": {"type": "string", "pattern": _ID_PATTERN},
            },
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Invocation id, bare or as an RFC 8941 string",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": _arguments(exposed, schemas),
        "responses": {
            "200": _json(StatusDocument, "Settled (within wait, or already)"),
            "202": {
                **_json(StatusDocument, "Started, still pending"),
                "headers": {
                    "Location": {"description": "The status URL", "schema": {"type": "string"}},
                    **_RETRY_AFTER,
                },
            },
            **_problems(400, 413, 415, 422, 503),
        },
    }


def document(
    exposed: dict[str, Exposed],
    prefix: str,
    *,
    title: str = "resonate-web",
    version: str = "1",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """The OpenAPI document of the routes mounted at ``prefix``."""
    tags = tags if tags is not None else ["resonate"]
    _, defs = models_json_schema([(m, "serialization") for m in _MODELS], ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, Any] = {
        f"{prefix}/functions": {
            "get": {
                "tags": tags,
                "operationId": "resonate_list_functions",
                "summary": "List the exposed functions",
                "responses": {"200": _json(FunctionList, "The exposed functions")},
            }
        },
    }
    for name in sorted(exposed):
        paths[f"{prefix}/functions/{name}"] = {"post": _start(exposed[name], tags, schemas)}
    paths[f"{prefix}/invocations/{{id}}"] = {
        "get": {
            "tags": tags,
            "operationId": "resonate_status",
            "summary": "Read (or long-poll) an invocation",
            "parameters": [_ID_PATH, _WAIT],
            "responses": {
                "200": {
                    **_json(StatusDocument, "The status document"),
                    "headers": _RETRY_AFTER,
                },
                **_problems(400, 404, 503),
            },
        }
    }
    paths[f"{prefix}/invocations/{{id}}/events"] = {
        "get": {
            "tags": tags,
            "operationId": "resonate_events",
            "summary": "Stream an invocation's status",
            "description": "`event: status` frames carrying the status document: now, and "
            "when it settles; keep-alive comments in between.",
            "parameters": [_ID_PATH],
            "responses": {
                "200": {
                    "description": "A server-sent event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_problems(400, 404, 503),
            },
        }
    }
    paths[f"{prefix}/health"] = {
        "get": {
            "tags": tags,
            "operationId": "resonate_health",
            "summary": "Backend health",
            "responses": {"200": _json(Health, "The backend answers"), **_problems(503)},
        }
    }
    paths.update(_schedule_paths(prefix, tags))
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _schedule_paths(prefix: str, tags: list[str]) -> dict[str, Any]:
    """``/schedules`` and ``/schedules/{id}``."""
    id_path = {**_ID_PATH, "description": "Schedule id"}
    return {
        f"{prefix}/schedules": {
            "get": {
                "tags": tags,
                "operationId": "resonate_list_schedules",
                "summary": "List the schedules",
                "description": "Every schedule of an exposed function, by id, with its next "
                "tick times (the latest ticks are in each schedule's own document).",
                "responses": {"200": _json(ScheduleList, "The schedules"), **_problems(503)},
            },
            "post": {
                "tags": tags,
                "operationId": "resonate_create_schedule",
                "summary": "Create a cron schedule",
                "description": "Each tick runs the function as an invocation with the id "
                "`{id}-{tick time in unix ms}`, on a worker of its group (inline functions: "
                "in the web processes). The same definition again is 200; another one under "
                "the same id is 409.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(ScheduleRequest)}},
                },
                "responses": {
                    "200": _json(ScheduleDocument, "The same schedule existed already"),
                    "201": {
                        **_json(ScheduleDocument, "Created"),
                        "headers": {
                            "Location": {
                                "description": "The schedule's URL",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    **_problems(400, 404, 409, 413, 415, 422, 503),
                },
            },
        },
        f"{prefix}/schedules/{{id}}": {
            "get": {
                "tags": tags,
                "operationId": "resonate_get_schedule",
                "summary": "Read a schedule and its latest ticks",
                "parameters": [id_path],
                "responses": {
                    "200": _json(ScheduleDocument, "The schedule"),
                    **_problems(400, 404, 503),
                },
            },
            "delete": {
                "tags": tags,
                "operationId": "resonate_delete_schedule",
                "summary": "Delete a schedule",
                "description": "No more ticks; the ticks already fired stay as they are.",
                "parameters": [id_path],
                "responses": {
                    "204": {"description": "Deleted"},
                    **_problems(400, 404, 503),
                },
            },
        },
    }
