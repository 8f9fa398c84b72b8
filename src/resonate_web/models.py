"""Typed shapes of the contract's documents (for OpenAPI and for typed clients)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FunctionInfo(BaseModel):
    name: str
    version: int
    mode: Literal["inline", "dispatch"]
    target: str | None
    description: str | None = Field(description="The function's docstring")
    parameters: dict[str, Any] | None = Field(
        description="JSON Schema of the arguments (null for a dispatch-only name without one)"
    )
    retry_policy: dict[str, Any] | None = Field(
        description="How a failed attempt is retried, e.g. {'kind': 'exponential', "
        "'max_retries': 30, ...}; null when only the worker knows (expose_remote)"
    )
    flow: dict[str, Any] | None = Field(
        default=None,
        description="Its flow control, when it has some: {'concurrency': {'limit', 'key'}, "
        "'rate': {'limit', 'period', 'key', 'on_limit'}, 'debounce': {'period', 'key'}}",
    )


class FunctionList(BaseModel):
    functions: list[FunctionInfo]


class ErrorInfo(BaseModel):
    type: str = Field(description="The exception's class name, e.g. ValueError")
    message: str


class Links(BaseModel):
    self: str
    events: str
    tree: str
    cancel: str


class LastError(BaseModel):
    type: str = Field(description="The exception's class name")
    message: str
    step: str | None = Field(description="The failing step's id, null for the function itself")
    at: str | None = Field(description="ISO-8601 UTC")
    next_attempt_at: str | None = Field(description="ISO-8601 UTC, null when none is planned")


class StatusDocument(BaseModel):
    model_config = ConfigDict(json_schema_extra={"additionalProperties": False})

    id: str
    function: str | None
    status: Literal["pending", "resolved", "rejected", "canceled", "timedout"]
    tags: dict[str, str] = Field(default={}, description="The tags it was started with")
    rerun_of: str | None = Field(
        default=None, description="On a rerun: the id of the invocation it reruns"
    )
    attempts: int | None = Field(
        default=None, description="While pending, once something failed: attempts so far"
    )
    last_error: LastError | None = Field(
        default=None, description="While pending, once something failed: the newest failure"
    )
    result: Any = Field(default=None, description="Only when resolved")
    error: ErrorInfo | None = Field(default=None, description="Only when rejected")
    awaiting: list[str] | None = Field(
        default=None, description="Promise ids the invocation waits on, while it waits"
    )
    waiting_for: Literal["concurrency", "rate", "debounce"] | None = Field(
        default=None,
        description="While pending and not yet begun: the flow control it waits for",
    )
    created_at: str | None = Field(description="ISO-8601 UTC")
    settled_at: str | None = Field(default=None, description="ISO-8601 UTC, once settled")
    links: Links


class InvocationList(BaseModel):
    invocations: list[StatusDocument] = Field(description="Newest first")
    next: str | None = Field(description="The cursor of the next page, null on the last")


class Skipped(BaseModel):
    id: str
    reason: str = Field(description="The single route's problem: '<slug>: <detail>'")


class BulkResult(BaseModel):
    """The answer of ``POST /invocations/cancel`` and ``POST /invocations/rerun``."""

    matched: int = Field(description="Invocations the filters found on this page")
    done: list[str] = Field(description="Ids acted on")
    skipped: list[Skipped] = Field(description="Ids the single route's rules refused, and why")
    next: str | None = Field(description="The cursor continuing the filter, null at its end")


class StatusCounts(BaseModel):
    pending: int
    resolved: int
    rejected: int
    canceled: int
    timedout: int


class Durations(BaseModel):
    p50: float
    p95: float
    max: float


class Bucket(BaseModel):
    """One interval of the statistics' window: what started in it."""

    start: str = Field(description="ISO-8601 UTC, the interval's start")
    started: int = Field(description="Invocations created in the interval")
    failed: int = Field(description="Of those, how many failed (rejected or timed out)")


class FlowCounts(BaseModel):
    concurrency: int = Field(description="Waiting for a concurrency slot")
    rate: int = Field(description="Waiting for their rate window")
    debounce: int = Field(description="Debounced, waiting for their quiet period to end")
    running: int = Field(description="Running, holding a concurrency slot")


class FunctionStats(BaseModel):
    """``GET /functions/{name}/stats``: over invocations created within the window."""

    function: str
    window: int = Field(description="Seconds")
    counts: StatusCounts
    duration_ms: Durations | None = Field(description="Of the settled ones; null when none")
    failure_rate: float | None = Field(
        description="(rejected + timedout) / settled; null when none settled"
    )
    buckets: list[Bucket] = Field(
        default=[],
        description="The window cut into 30 equal intervals, oldest first: starts and "
        "failures over time",
    )
    flow: FlowCounts | None = Field(
        default=None,
        description="For a function with flow control, now: how many wait, for what, "
        "and how many run holding a concurrency slot",
    )


class TreeNode(BaseModel):
    """A durable step: a call (``ctx.run``/``ctx.rpc``), a sleep, or a promise."""

    id: str
    kind: Literal["call", "sleep", "promise"]
    function: str | None = Field(default=None, description="For a call")
    status: Literal["pending", "resolved", "rejected", "canceled", "timedout"]
    created_at: str | None
    settled_at: str | None = None
    attempts: int | None = Field(
        default=None, description="While pending, once it failed: attempts so far"
    )
    last_error: LastError | None = Field(
        default=None, description="While pending, once it failed: the newest failure"
    )
    args: list[Any] | None = Field(
        default=None,
        description="With ?values=true, a call whose arguments are stored: by position",
    )
    kwargs: dict[str, Any] | None = Field(
        default=None, description="With ?values=true, a call whose arguments are stored: by name"
    )
    result: Any = Field(
        default=None, description="With ?values=true, a resolved call or promise: its value"
    )
    error: ErrorInfo | None = Field(
        default=None, description="With ?values=true, a rejected call or promise: its error"
    )
    children: list[TreeNode]
    truncated: bool | None = Field(
        default=None, description="On the root, when the tree was cut at its size limit"
    )


class PromiseDocument(BaseModel):
    id: str
    status: Literal["pending", "resolved", "rejected", "canceled", "timedout"]
    value: Any = Field(default=None, description="Once settled: the value, or the JSON error")
    awaited_by: str | None = Field(default=None, description="The invocation that awaits it")


class Health(BaseModel):
    status: Literal["ok"]
    backend: Literal["embedded", "http", "postgres"]


class ProblemDetails(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:resonate-web:problem:invalid-json"])
    title: str
    status: int
    detail: str
    instance: str


class ScheduleRequest(BaseModel):
    """The body of ``POST /schedules``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="The schedule's id; each tick's invocation id is '{id}-{tick time, unix ms}'",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,241}$",
    )
    cron: str = Field(
        description="Five fields (minute hour day-of-month month day-of-week), in UTC: "
        "numbers, '*', ranges 'a-b', steps '/n' and lists 'a,b'",
        examples=["0 * * * *"],
    )
    function: str = Field(description="The exposed function each tick runs")
    args: list[Any] = Field(default=[], description="Positional arguments of every tick")
    kwargs: dict[str, Any] = Field(default={}, description="Keyword arguments of every tick")
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds each tick may take before it times out (default: the "
        "function's timeout, else one day)",
    )


class ScheduleLinks(BaseModel):
    self: str


class ScheduleSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"additionalProperties": False})

    id: str
    cron: str
    function: str | None
    args: list[Any]
    kwargs: dict[str, Any]
    timeout: float = Field(description="Seconds each tick may take")
    next_runs: list[str] = Field(description="The next tick times, ISO-8601 UTC")
    links: ScheduleLinks


class ScheduleDocument(ScheduleSummary):
    recent: list[StatusDocument] = Field(
        description="The status documents of the latest ticks, newest first (at most 10)"
    )


class ScheduleList(BaseModel):
    schedules: list[ScheduleSummary]
