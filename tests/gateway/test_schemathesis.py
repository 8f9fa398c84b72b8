"""schemathesis against the OpenAPI documents the apps serve, under real servers: FastAPI's
own ``/openapi.json`` and the one Flask and Django serve at ``/resonate/openapi.json``.

A bounded number of generated requests per operation (``MAX_EXAMPLES``); every answer
must not be a server error and must match the documented status codes, media types
and schemas.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.support import procs, servers

#: No server error; every status, media type and body as documented. (Whether the API
#: accepts every schema-valid request is not checked: an unknown cursor or id is valid
#: by its schema and rightly refused.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    allow_header_conformance,
    unsupported_method,
]

MAX_EXAMPLES = 5
DOCUMENTS = {
    "fastapi-uvicorn": "/openapi.json",
    "flask-gunicorn": "/resonate/openapi.json",
    "django-uvicorn": "/resonate/openapi.json",
}
#: Functions a generated call would keep waiting (durable sleeps, blocking, approvals),
#: or that write where a generated argument says (``note`` appends to a file).
SLOW = re.compile(
    r"/functions/(slow|slow_timeout|hold|wide|countdown|approval|app_config|orders_seen"
    r"|remote_add|remote_raw|book_trip|fan_out|refusing|note)$"
)


@pytest.mark.multiprocess
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
def test_every_operation_holds_to_its_document(kind: str) -> None:
    base = servers.shared(kind)
    check_every_operation(base, DOCUMENTS[kind])


@pytest.mark.multiprocess
@pytest.mark.timeout(300)
def test_the_example_gateway_holds_to_its_document() -> None:
    """What ``make demo`` serves: the example's own routes (``/hello/{name}``) too."""
    with procs.uvicorn(
        "gateway_fastapi:app", cwd=procs.ROOT / "examples" / "gateway_worker"
    ) as base:
        check_every_operation(base, "/openapi.json")


def check_every_operation(base: str, document: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base}{document}")
    operations = [op.ok() for op in schema.get_all_operations()]
    checked = 0
    for operation in operations:
        if SLOW.search(operation.path):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            if case.query and "wait" in case.query:  # a long-poll on a pending id holds
                case.query["wait"] = min(float(case.query["wait"]), 0.2)
            case.call_and_validate(base_url=base, timeout=30, checks=CHECKS)

        call()
        checked += 1
    assert checked >= 15, f"only {checked} operations were exercised"
