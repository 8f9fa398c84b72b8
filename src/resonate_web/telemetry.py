"""OpenTelemetry, the public face: the log filter that names each record's
invocation (see docs/observability.md)."""

from resonate_web._core.telemetry import InvocationFilter, current_invocation

__all__ = ["InvocationFilter", "current_invocation"]
