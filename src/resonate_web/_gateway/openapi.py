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

from resonate_web._core.exposure import Exposed
from resonate_web.models import (
    BulkResult,
    FunctionList,
    FunctionStats,
    Health,
    InvocationList,
    ProblemDetails,
    PromiseDocument,
    ScheduleDocument,
    ScheduleList,
    ScheduleRequest,
    StatusDocument,
    TreeNode,
)
from resonate_web.problems import PROBLEM_CONTENT_TYPE

_REF = "#/components/schemas/{model}"
_MODELS = (
    BulkResult,
    FunctionStats,
    FunctionList,
    StatusDocument,
    Health,
    ProblemDetails,
    InvocationList,
    TreeNode,
    PromiseDocument,
    ScheduleRequest,
    ScheduleDocument,
    ScheduleList,
)

_PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON, id, wait or query (problem+json)",
    404: "Not found (problem+json)",
    409: "Conflict: settled another way, or a schedule with another definition (problem+json)",
    413: "Body over the size limit (problem+json)",
    415: "The body is not JSON (problem+json)",
    422: "Arguments do not bind to the function, or the id names another call (problem+json)",
    429: "The function's rate limit refuses starts for now (problem+json, Retry-After)",
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


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the problem statuses ``codes`` (400, 404, 409, 413, 415,
    422, 503): what a handler of yours that uses the client may answer, for
    FastAPI's ``responses=``."""
    return {
        code: {
            "description": _PROBLEM_DESCRIPTIONS[code],
            "content": {PROBLEM_CONTENT_TYPE: {"schema": ProblemDetails.model_json_schema()}},
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
_ID_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._~-]{0,255}$"
_KEY_PATTERN = (
    r'^(?!.*\.\.)("[A-Za-z0-9][A-Za-z0-9._~-]{0,255}"|[A-Za-z0-9][A-Za-z0-9._~-]{0,255})$'
)
_PROMISE_ID_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._~:-]{0,511}$"
_ID_PATH = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Invocation id",
    "schema": {"type": "string", "pattern": _ID_PATTERN},
}
#: One server-sent event: ``status`` (data: a status document) or ``error`` (a problem).
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["status", "error"]},
        "data": {"type": "string", "description": "JSON: the status document, or a problem"},
    },
    "required": ["event", "data"],
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds", "schema": {"type": "integer"}}}


#: The ``tags`` member of a start's body (contract v3).
_PRIORITY = {
    "type": "integer",
    "minimum": -1000,
    "maximum": 1000,
    "description": "Among invocations of the function waiting for flow control, higher "
    "runs first (default 0)",
}
_TAGS = {
    "type": "object",
    "description": "The invocation's tags: at most 16; keys of a-z 0-9 _ . - not "
    "starting with 'resonate'",
    "maxProperties": 16,
    "propertyNames": {"pattern": "^(?!resonate)[a-z0-9_.-]{1,64}$"},
    "additionalProperties": {"type": "string", "maxLength": 256},
}


def _object(properties: dict[str, Any], required: list[str], extra: Any = False) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": extra,
    }
    if required:
        schema["required"] = required
    return schema


def _arguments(exposed: Exposed, schemas: dict[str, Any]) -> dict[str, Any]:
    """The request body of ``POST /functions/{name}`` for ``exposed``.

    Two spellings are documented: every parameter it can by position (``args``,
    keyword-only ones in ``kwargs``), or every one by name (``kwargs``). A mix
    of the two binds as well; it is left out to keep the schema exact.
    """
    if exposed.binder is None:
        loose = _object(
            {
                "args": {"type": "array", "description": "Positional arguments"},
                "kwargs": {"type": "object", "description": "Keyword arguments"},
                "tags": _TAGS,
                "priority": _PRIORITY,
            },
            [],
        )
        return {"required": False, "content": {"application/json": {"schema": loose}}}
    params = exposed.binder.json_schema()
    # Nested models ($defs) become components, named after the function.
    prefix = f"{exposed.name}."
    text = json.dumps(params).replace('"#/$defs/', f'"#/components/schemas/{prefix}')
    params = json.loads(text)
    for name, schema in params.pop("$defs", {}).items():
        schemas[prefix + name] = schema
    properties: dict[str, Any] = params.get("properties", {})
    required = set(params.get("required", []))
    signature = exposed.binder.signature.parameters.values()
    positional = [p for p in signature if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword = [p for p in signature if p.kind is p.KEYWORD_ONLY]
    star = next((p for p in signature if p.kind is p.VAR_POSITIONAL), None)
    stars = next((p for p in signature if p.kind is p.VAR_KEYWORD), None)
    extra: Any = properties[stars.name].get("additionalProperties", True) if stars else False
    args: dict[str, Any] = {
        "type": "array",
        "description": f"By position: {', '.join(p.name for p in positional) or 'none'}",
        "minItems": sum(p.name in required for p in positional),
    }
    if positional:
        args["prefixItems"] = [properties[p.name] for p in positional]
    if star is None:
        args["maxItems"] = len(positional)
        args["items"] = False
    else:
        args["items"] = properties[star.name].get("items", {})
    named = {p.name: properties[p.name] for p in keyword}
    by_position = _object(
        {
            "args": args,
            "kwargs": _object(named, [p.name for p in keyword if p.name in required], extra),
            "tags": _TAGS,
            "priority": _PRIORITY,
        },
        ["args"] if args["minItems"] else [],
    )
    forms = [by_position]
    if not any(p.kind is p.POSITIONAL_ONLY for p in positional) and star is None:
        everything = [*positional, *keyword]
        by_name = _object(
            {
                "kwargs": _object(
                    {p.name: properties[p.name] for p in everything},
                    [p.name for p in everything if p.name in required],
                    extra,
                ),
                "tags": _TAGS,
                "priority": _PRIORITY,
            },
            ["kwargs"] if any(p.name in required for p in everything) else [],
        )
        forms.append(by_name)
    body: dict[str, Any] = forms[0] if len(forms) == 1 else {"anyOf": forms}
    return {
        "required": bool(required),
        "content": {"application/json": {"schema": body}},
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
                "schema": {"type": "string", "pattern": _KEY_PATTERN},
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
            **(
                _problems(429)
                if exposed.flow.rate is not None and exposed.flow.rate.on_limit == "reject"
                else {}
            ),
        },
    }


_PROMISE_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Promise id (a step of an invocation: ``<invocation id>:<n>``)",
    "schema": {"type": "string", "pattern": _PROMISE_ID_PATTERN},
}


def _settle(action: str, member: str | None, tags: list[str]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": tags,
        "operationId": f"resonate_{action}_promise",
        "summary": f"{action.capitalize()} a promise",
        "parameters": [_PROMISE_ID],
        "responses": {
            "200": _json(PromiseDocument, "Settled (again the same way: idempotent)"),
            **_problems(400, 404, 409, 413, 415, 503),
        },
    }
    if member is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {member: {"description": f"Any JSON: the {member}"}},
                        "additionalProperties": False,
                    }
                }
            },
        }
    return operation


def _filters(most: int) -> list[dict[str, Any]]:
    """The list route's filters (and the bulk routes'), ``limit`` up to ``most``."""
    return [
        {"name": "function", "in": "query", "schema": {"type": "string"}},
        {
            "name": "status",
            "in": "query",
            "schema": {
                "type": "string",
                "enum": ["pending", "resolved", "rejected", "canceled", "timedout"],
            },
        },
        {"name": "schedule", "in": "query", "schema": {"type": "string"}},
        {
            "name": "tag",
            "in": "query",
            "description": "key:value; repeatable, every one must match",
            "style": "form",
            "explode": True,
            "schema": {"type": "array", "items": {"type": "string"}},
        },
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": most},
        },
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        {
            "name": "waiting_for",
            "in": "query",
            "description": "Only invocations waiting for this flow control, in the order "
            "they will run (one page, no cursor)",
            "schema": {"type": "string", "enum": ["concurrency", "rate", "debounce"]},
        },
    ]


def _bulk(action: str, tags: list[str]) -> dict[str, Any]:
    return {
        "tags": tags,
        "operationId": f"resonate_{action}_many",
        "summary": f"{action.capitalize()} the invocations the filters find",
        "description": "At least one of function, status, tag, schedule; at most limit "
        "(default 100) invocations, newest first, each under the single route's rules.",
        "parameters": _filters(1000),
        "responses": {
            "200": _json(BulkResult, "What was done, and what was skipped and why"),
            **_problems(400, 503),
        },
    }


def _operation_paths(prefix: str, tags: list[str]) -> dict[str, Any]:
    """Rerun, the bulk actions and the statistics (contract v3)."""
    return {
        f"{prefix}/invocations/{{id}}/rerun": {
            "post": {
                "tags": tags,
                "operationId": "resonate_rerun",
                "summary": "Rerun a settled invocation",
                "description": "A new invocation of the same function with the same "
                "arguments and tags; the old one is untouched.",
                "parameters": [
                    _ID_PATH,
                    {
                        "name": "id",
                        "in": "query",
                        "required": False,
                        "description": "The new invocation's id; default: random",
                        "schema": {"type": "string", "pattern": _ID_PATTERN},
                    },
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "The new invocation's id (wins over ?id=)",
                        "schema": {"type": "string", "pattern": _KEY_PATTERN},
                    },
                ],
                "responses": {
                    "201": {
                        **_json(StatusDocument, "The new invocation (with rerun_of)"),
                        "headers": {
                            "Location": {
                                "description": "The new invocation's status URL",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    **_problems(400, 404, 409, 422, 503),
                },
            }
        },
        f"{prefix}/invocations/cancel": {"post": _bulk("cancel", tags)},
        f"{prefix}/invocations/rerun": {"post": _bulk("rerun", tags)},
        f"{prefix}/functions/{{name}}/stats": {
            "get": {
                "tags": tags,
                "operationId": "resonate_stats",
                "summary": "A function's statistics over a window",
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "window",
                        "in": "query",
                        "description": "Seconds (default 3600, at most 30 days)",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 2592000},
                    },
                ],
                "responses": {
                    "200": _json(
                        FunctionStats, "Counts, durations, failure rate, starts and failures"
                    ),
                    **_problems(400, 404, 503),
                },
            }
        },
    }


def _browse_paths(prefix: str, tags: list[str], promises: bool) -> dict[str, Any]:
    paths: dict[str, Any] = {
        f"{prefix}/invocations": {
            "get": {
                "tags": tags,
                "operationId": "resonate_list",
                "summary": "List invocations, newest first",
                "parameters": _filters(100),
                "responses": {
                    "200": _json(InvocationList, "A page of invocations"),
                    **_problems(400, 503),
                },
            }
        },
        f"{prefix}/invocations/{{id}}/cancel": {
            "post": {
                "tags": tags,
                "operationId": "resonate_cancel",
                "summary": "Cancel an invocation",
                "description": "Its promise settles as canceled; code already running is "
                "not interrupted, and what it returns is discarded.",
                "parameters": [_ID_PATH],
                "responses": {
                    "200": _json(StatusDocument, "Canceled (now or before)"),
                    **_problems(400, 404, 409, 503),
                },
            }
        },
        f"{prefix}/invocations/{{id}}/tree": {
            "get": {
                "tags": tags,
                "operationId": "resonate_tree",
                "summary": "An invocation's durable steps, nested",
                "parameters": [
                    _ID_PATH,
                    {
                        "name": "values",
                        "in": "query",
                        "description": "true: each call's arguments (where stored) and each "
                        "settled call's or promise's result or error",
                        "schema": {"type": "boolean", "default": False},
                    },
                ],
                "responses": {
                    "200": _json(TreeNode, "The invocation and its steps"),
                    **_problems(400, 404, 503),
                },
            }
        },
    }
    if promises:
        paths[f"{prefix}/promises/{{id}}"] = {
            "get": {
                "tags": tags,
                "operationId": "resonate_promise",
                "summary": "Read a promise",
                "parameters": [_PROMISE_ID],
                "responses": {
                    "200": _json(PromiseDocument, "The promise"),
                    **_problems(400, 404, 503),
                },
            }
        }
        paths[f"{prefix}/promises/{{id}}/resolve"] = {"post": _settle("resolve", "value", tags)}
        paths[f"{prefix}/promises/{{id}}/reject"] = {"post": _settle("reject", "error", tags)}
        paths[f"{prefix}/promises/{{id}}/cancel"] = {"post": _settle("cancel", None, tags)}
    return paths


def document(
    exposed: dict[str, Exposed],
    prefix: str,
    *,
    title: str = "resonate-web",
    version: str = "1",
    tags: list[str] | None = None,
    promises: bool = True,
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
                    "content": {"text/event-stream": {"schema": _SSE_EVENT}},
                },
                **_problems(400, 404, 503),
            },
        }
    }
    paths.update(_browse_paths(prefix, tags, promises))
    paths.update(_operation_paths(prefix, tags))
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
