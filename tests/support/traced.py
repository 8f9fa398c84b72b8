"""A gateway and a worker with OpenTelemetry on, each exporting to files (no tests here).

``TRACED_DIR`` names a directory; each process appends its finished spans to
``spans.jsonl`` and its metrics to ``metrics.jsonl`` (one JSON object a line,
one ``write`` each, so processes do not interleave), and its log records, with
their invocation id, to ``log-<pid>.txt``.

Gateway: ``uvicorn tests.support.traced:app`` (``RESONATE_URL`` set: the
functions run on workers); worker: ``resonate-web worker tests.support.traced``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from resonate.context import Context
from resonate.retry import Never

from examples.gateway_worker import functions as example
from resonate_web import Functions
from resonate_web._core.telemetry import InvocationFilter

DIR = Path(os.environ.get("TRACED_DIR", "."))


def _append(path: Path, row: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(row, default=str) + "\n").encode())
    finally:
        os.close(fd)


class JsonLinesSpans(SpanExporter):
    """Each finished span as one JSON line: ids in hex, the process that made it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            ctx = span.get_span_context()
            assert ctx is not None
            _append(
                DIR / "spans.jsonl",
                {
                    "name": span.name,
                    "trace_id": f"{ctx.trace_id:032x}",
                    "span_id": f"{ctx.span_id:016x}",
                    "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
                    "pid": os.getpid(),
                    "attributes": dict(span.attributes or {}),
                    "status": span.status.status_code.name,
                },
            )
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class JsonLinesMetrics(MetricExporter):
    """Each exported data point as one JSON line."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        for resource in metrics_data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        _append(
                            DIR / "metrics.jsonl",
                            {
                                "name": metric.name,
                                "pid": os.getpid(),
                                "attributes": dict(point.attributes or {}),
                                "value": getattr(point, "value", None),
                            },
                        )
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpans()))
trace.set_tracer_provider(tracer_provider)
metrics.set_meter_provider(
    MeterProvider(
        metric_readers=[
            PeriodicExportingMetricReader(JsonLinesMetrics(), export_interval_millis=300)
        ]
    )
)

log_handler = logging.FileHandler(DIR / f"log-{os.getpid()}.txt")
log_handler.addFilter(InvocationFilter())
log_handler.setFormatter(logging.Formatter("%(invocation_id)s %(name)s %(message)s"))
logging.getLogger("traced").addHandler(log_handler)
logging.getLogger("traced").setLevel(logging.INFO)

functions = Functions()


@functions.expose(retry_policy=Never())
def greet(ctx: Context, name: str) -> str:
    """Log a line (it carries the invocation id), then greet ``name``."""
    logging.getLogger("traced").info("greeting %s", name)
    return f"hello {name}"


functions.expose(example.fail, retry_policy=Never())


def audit(request: Any, action: str, resource: str | None) -> None:
    """An authorize hook that lets everyone in and logs each request (in the request)."""
    logging.getLogger("traced").info("request %s", action)


def _app() -> Any:
    from fastapi import FastAPI

    from resonate_web.fastapi import ResonateRouter

    app = FastAPI()
    app.include_router(ResonateRouter(functions, authorize=audit))
    return app


app = _app()
