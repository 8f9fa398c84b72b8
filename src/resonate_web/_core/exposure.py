"""Which functions are reachable over HTTP, and how their arguments bind.

A function is reachable only when exposed. Arguments are bound to the
function's signature and validated against its type hints with pydantic (strict,
JSON semantics), which also yields the JSON Schema served by ``GET /functions``.
The bound arguments, in canonical form, are what the backend stores, so the same
call spelled two ways (positionally or by keyword) is recognised as one.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import msgspec
import pydantic
import pydantic_core
from resonate.context import Context
from resonate.retry import Exponential, RetryPolicy

from resonate_web._core.cron import declarations
from resonate_web._core.flow import Concurrency, Debounce, FlowRules, RateLimit
from resonate_web.problems import Problem, field_path
from resonate_web.settings import ConfigurationError, Settings

logger = logging.getLogger("resonate_web")

#: The SDK's own default retry policy (resonate-sdk 0.8): 30 retries, the delay
#: doubling from 1 s without a cap, so a function that keeps failing stays
#: ``pending`` for a very long time. resonate-web passes it to the SDK
#: explicitly, so what ``GET /functions`` shows is what runs.
SDK_DEFAULT_RETRY_POLICY: RetryPolicy = Exponential(
    delay=1, max_delay=(1 << 63) - 1, factor=2, max_retries=30
)

#: Exposed names live in URLs and ids: the id alphabet, without ``..``.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._~-]{0,127}")
#: Names a first parameter without a type hint may have to count as the Context.
_CONTEXT_NAMES = {"ctx", "context", "_ctx", "_context", "_"}


class _Unresolved:
    """Marks an annotation that could not be evaluated (it validates as ``Any``)."""


Mode = Literal["inline", "dispatch"]
DurableFn = Callable[..., Any]
SignatureSource = Callable[..., Any] | type[pydantic.BaseModel]


def _evaluate(annotation: Any, globalns: dict[str, Any]) -> Any:
    """``annotation`` evaluated in ``globalns``; :class:`_Unresolved` if that fails."""
    if isinstance(annotation, str):
        try:
            return eval(annotation, globalns, vars(builtins))  # noqa: S307 - annotations only
        except Exception:
            return _Unresolved
    return annotation


def resolve_annotation(annotation: Any, globalns: dict[str, Any]) -> Any:
    """An annotation as the SDK and pydantic should see it (``Any`` when absent or
    unresolvable, e.g. a name imported only under ``TYPE_CHECKING``)."""
    if annotation is inspect.Parameter.empty:
        return Any
    value = _evaluate(annotation, globalns)
    return Any if value is _Unresolved else value


def resolved_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s whole signature with its annotations evaluated in ``fn``'s module.

    Wrappers carry it (``__signature__``) so the SDK binds and coerces arguments
    exactly as for the unwrapped function.
    """
    globalns = getattr(inspect.unwrap(fn), "__globals__", {})
    sig = inspect.signature(fn)
    return sig.replace(
        parameters=[
            p.replace(annotation=resolve_annotation(p.annotation, globalns))
            for p in sig.parameters.values()
        ],
        return_annotation=resolve_annotation(sig.return_annotation, globalns),
    )


def _describe(fn: Callable[..., Any]) -> str:
    code = getattr(inspect.unwrap(fn), "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{getattr(fn, '__qualname__', repr(fn))}{where}"


def _is_context(param: inspect.Parameter, globalns: dict[str, Any]) -> bool:
    if param.kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return False
    if param.annotation is inspect.Parameter.empty:
        return param.name in _CONTEXT_NAMES
    annotation = _evaluate(param.annotation, globalns)
    if annotation is _Unresolved or isinstance(annotation, str):
        # ``ctx: "Context"`` with Context imported only for type checking.
        return str(param.annotation).strip("'\"").rsplit(".", 1)[-1] == "Context"
    return isinstance(annotation, type) and issubclass(annotation, Context)


def _user_signature(fn: Callable[..., Any], name: str) -> inspect.Signature:
    """The signature of ``fn`` without its leading ``ctx``, annotations resolved.

    Refuses a function whose first parameter is not the Context (``ctx`` or
    annotated ``Context``): the SDK would pass the Context in its place. Warns
    about each parameter that validates as ``Any`` (no type hint, or one that
    does not resolve at run time).
    """
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    globalns = getattr(inspect.unwrap(fn), "__globals__", {})
    if not params or not _is_context(params[0], globalns):
        first = f"its first parameter is {params[0].name!r}" if params else "it takes none"
        raise TypeError(
            f"{name!r}: a durable function takes the Context first "
            f"(def {name}(ctx: Context, ...)), but {first}: {_describe(fn)}"
        )
    loose = [
        p.name
        for p in params[1:]
        if p.annotation is inspect.Parameter.empty
        or _evaluate(p.annotation, globalns) is _Unresolved
    ]
    if loose:
        logger.warning(
            "resonate-web: %s: parameter(s) %s have no type hint that resolves at run time "
            "(none, or imported only under TYPE_CHECKING): they accept any JSON value",
            name,
            ", ".join(map(repr, loose)),
        )
    return sig.replace(
        parameters=[
            p.replace(annotation=resolve_annotation(p.annotation, globalns)) for p in params[1:]
        ],
        return_annotation=resolve_annotation(sig.return_annotation, globalns),
    )


def describe_retry_policy(policy: RetryPolicy) -> dict[str, Any]:
    """A retry policy as JSON: ``{"kind": "exponential", "max_retries": 30, ...}``."""
    described: dict[str, Any] = {"kind": type(policy).__name__.lower()}
    if isinstance(policy, msgspec.Struct):
        for key, value in msgspec.structs.asdict(policy).items():
            # The SDK's "no cap" is the largest 64-bit integer: say null instead.
            described[key] = None if isinstance(value, int) and value >= 1 << 53 else value
    return described


def _model_signature(model: type[pydantic.BaseModel]) -> inspect.Signature:
    params = []
    for name, info in model.model_fields.items():
        default = inspect.Parameter.empty if info.is_required() else info.get_default()
        params.append(
            inspect.Parameter(
                info.alias or name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=default,
                annotation=info.annotation,
            )
        )
    return inspect.Signature(params)


class Binder:
    """Binds ``args``/``kwargs`` to a signature and validates them with pydantic."""

    def __init__(self, name: str, signature: inspect.Signature, *, by_name: bool = False) -> None:
        self.name = name
        self.signature = signature
        #: Send every argument by name (a pydantic model of keyword arguments);
        #: otherwise each one Python allows goes by position.
        self.by_name = by_name
        fields: dict[str, Any] = {}
        for index, param in enumerate(signature.parameters.values()):
            annotation = param.annotation
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                annotation = list[annotation]  # type: ignore[valid-type]
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                annotation = dict[str, annotation]  # type: ignore[valid-type]
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[f"p{index}"] = (
                annotation,
                pydantic.Field(default=default, alias=param.name),
            )
        self.model: type[pydantic.BaseModel] = pydantic.create_model(
            f"{name}_arguments",
            __config__=pydantic.ConfigDict(strict=True, extra="forbid"),
            **fields,
        )

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.model.model_json_schema(by_alias=True)
        schema["title"] = f"{self.name} arguments"
        return schema

    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Return the canonical ``(args, kwargs)`` for a call, or raise a 422 problem."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise Problem("invalid-arguments", f"{self.name}: {exc}") from None
        bound.apply_defaults()
        try:
            # Python callers may pass models or dataclasses: sent as their JSON.
            payload = json.dumps(bound.arguments, default=pydantic_core.to_jsonable_python)
        except (TypeError, ValueError) as exc:
            raise Problem("invalid-arguments", f"{self.name}: {exc}") from None
        try:
            validated = self.model.model_validate_json(payload, strict=True)
        except pydantic.ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
            named = ", ".join(f"{field_path(e['loc'])} ({e['msg']})" for e in errors)
            raise Problem(
                "invalid-arguments",
                f"{self.name}: arguments do not match the declared types: {named}",
                extensions={"errors": errors},
            ) from None
        values = validated.model_dump(mode="json", by_alias=True)
        out_args: list[Any] = []
        out_kwargs: dict[str, Any] = {}
        for param in self.signature.parameters.values():
            value = values[param.name]
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                out_args.extend(value)
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                out_kwargs.update(value)
            elif param.kind is inspect.Parameter.POSITIONAL_ONLY or (
                param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and not self.by_name
            ):
                # By position wherever Python allows: a worker in another language
                # (TypeScript takes arguments by position only) sees them too.
                out_args.append(value)
            else:
                out_kwargs[param.name] = value
        return out_args, out_kwargs


@dataclass(frozen=True)
class Exposure:
    """A function as declared: what to expose and how it may run."""

    name: str
    version: int = 1
    mode: Mode | Literal["auto"] = "auto"
    target: str | None = None
    fn: DurableFn | None = None
    retry_policy: RetryPolicy | None = None
    timeout: timedelta | None = None
    binder: Binder | None = None
    description: str | None = None
    origin: str = ""
    #: ``(schedule id, cron)`` of each schedule declared with ``schedule=``.
    schedules: tuple[tuple[str, str], ...] = ()
    #: Registered and launched from Python only: never listed or started by the routes.
    internal: bool = False
    #: Concurrency, rate and debounce, as the code declares them.
    flow: FlowRules = field(default_factory=FlowRules)


@dataclass(frozen=True)
class Exposed:
    """A function as served by one gateway: its mode resolved against the settings."""

    name: str
    version: int
    mode: Mode
    target: str | None
    fn: DurableFn | None
    timeout: timedelta | None
    binder: Binder | None
    retry_policy: RetryPolicy | None = None
    description: str | None = None
    schedules: tuple[tuple[str, str], ...] = ()
    internal: bool = False
    #: Concurrency, rate and debounce, with the settings' ``LIMITS`` applied.
    flow: FlowRules = field(default_factory=FlowRules)

    @property
    def signature(self) -> inspect.Signature | None:
        return self.binder.signature if self.binder else None

    def describe(self) -> dict[str, Any]:
        policy = self.retry_policy
        described = {
            "name": self.name,
            "version": self.version,
            "mode": self.mode,
            "target": self.target,
            "description": self.description,
            "parameters": self.binder.json_schema() if self.binder else None,
            # Dispatched functions retry as their worker registered them.
            # Without the code here (expose_remote), the worker's registration decides.
            "retry_policy": (
                describe_retry_policy(policy or SDK_DEFAULT_RETRY_POLICY)
                if self.fn is not None
                else None
            ),
        }
        if self.flow:
            described["flow"] = describe_flow(self.flow)
        return described

    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        if self.binder is None:
            return args, kwargs
        return self.binder.bind(args, kwargs)


@dataclass
class Functions:
    """The set of functions a gateway serves and a worker runs.

    ``mode="auto"`` (the default) runs a function inline on the embedded backend
    and dispatches it to the target group (``RESONATE_TARGET``, default
    ``workers``) when a server or database is configured, so one module of
    functions serves a single-process app and a gateway/worker deployment alike.
    """

    _by_name: dict[str, Exposure] = field(default_factory=dict)
    #: Bumped by every change, so a running gateway serves what is exposed later.
    revision: int = 0

    def expose[F: DurableFn](
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        version: int = 1,
        mode: Mode | Literal["auto"] = "auto",
        target: str | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: timedelta | None = None,
        schedule: str | Iterable[str] = (),
        internal: bool = False,
        concurrency: Concurrency | None = None,
        rate: RateLimit | None = None,
        debounce: Debounce | None = None,
    ) -> Any:
        """Expose a durable function (``def fn(ctx, ...)``). Usable as a decorator.

        ``schedule`` runs it on a cron schedule (five fields, UTC), or on each of
        a list of them: every gateway and worker creates the schedule at start-up,
        idempotently (``docs/schedules.md``). ``internal`` registers it with
        every gateway and worker but keeps it off the routes (not listed, not
        startable over HTTP): Python code launches it with
        :meth:`~resonate_web._core.runtime.Runtime.internal`. ``concurrency``,
        ``rate`` and ``debounce`` limit how it runs across every process sharing the
        backend (``docs/flow-control.md``).
        """
        if fn is None:
            return functools.partial(
                self.expose,
                name=name,
                version=version,
                mode=mode,
                target=target,
                retry_policy=retry_policy,
                timeout=timeout,
                schedule=schedule,
                internal=internal,
                concurrency=concurrency,
                rate=rate,
                debounce=debounce,
            )
        exposed_name: str = name or str(getattr(fn, "__name__", ""))
        _check_name(exposed_name)
        binder = Binder(exposed_name, _user_signature(fn, exposed_name))
        flow = FlowRules(concurrency, rate, debounce)
        flow.check(exposed_name, binder.signature)
        self._add(
            Exposure(
                name=exposed_name,
                version=version,
                mode=mode,
                target=target,
                fn=fn,
                retry_policy=retry_policy,
                timeout=timeout,
                binder=binder,
                description=inspect.getdoc(fn),
                origin=_describe(fn),
                schedules=_scheduled(exposed_name, schedule, binder),
                internal=internal,
                flow=flow,
            )
        )
        return fn

    def expose_remote(
        self,
        name: str,
        *,
        target: str | None = None,
        version: int = 1,
        signature: SignatureSource | None = None,
        timeout: timedelta | None = None,
        description: str | None = None,
        schedule: str | Iterable[str] = (),
        concurrency: Concurrency | None = None,
        rate: RateLimit | None = None,
        debounce: Debounce | None = None,
    ) -> None:
        """Expose a function that only workers have: dispatched by name.

        ``signature`` is a stub with the worker function's parameters
        (``def charge(ctx, order_id: str, cents: int): ...``) or a pydantic model
        of its keyword arguments; without one, arguments are passed as sent.
        ``description`` defaults to the stub's docstring. ``schedule`` as for
        :meth:`expose`; so are ``concurrency``, ``rate`` and ``debounce``, which
        the workers that run it enforce (they expose it with the same options).
        """
        _check_name(name)
        binder = None
        if isinstance(signature, type) and issubclass(signature, pydantic.BaseModel):
            binder = Binder(name, _model_signature(signature), by_name=True)
        elif signature is not None:
            binder = Binder(name, _user_signature(signature, name))
        if description is None and signature is not None:
            description = inspect.getdoc(signature)
        flow = FlowRules(concurrency, rate, debounce)
        flow.check(name, binder.signature if binder else None)
        caller = inspect.stack(0)[1]
        self._add(
            Exposure(
                name=name,
                version=version,
                mode="dispatch",
                target=target,
                timeout=timeout,
                binder=binder,
                description=description,
                origin=f"expose_remote({name!r}) ({caller.filename}:{caller.lineno})",
                schedules=_scheduled(name, schedule, binder),
                flow=flow,
            )
        )

    def include(self, other: Functions) -> None:
        """Expose everything ``other`` exposes (a name exposed in both is an error)."""
        for exposure in other:
            self._add(exposure)

    def _add(self, exposure: Exposure) -> None:
        first = self._by_name.get(exposure.name)
        if first is not None:
            raise ValueError(
                f"function {exposure.name!r} is already exposed, by {first.origin or '?'}; "
                f"exposing {exposure.origin or 'it'} again needs another name (name=...)"
            )
        if exposure.version < 1:
            raise ValueError("version must be >= 1")
        self._by_name[exposure.name] = exposure
        self.revision += 1

    def __iter__(self) -> Iterator[Exposure]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def resolve(self, settings: Settings) -> dict[str, Exposed]:
        """Concretize every exposure's mode and target for a gateway with ``settings``."""
        resolved: dict[str, Exposed] = {}
        for exp in self:
            mode: Mode
            if exp.mode == "auto":
                mode = "inline" if settings.backend == "embedded" else "dispatch"
            else:
                mode = exp.mode
            if mode == "inline" and exp.fn is None:
                raise ValueError(f"{exp.name!r} has no code here and cannot run inline")
            resolved[exp.name] = Exposed(
                name=exp.name,
                version=exp.version,
                mode=mode,
                target=(exp.target or settings.target) if mode == "dispatch" else None,
                fn=exp.fn,
                timeout=exp.timeout,
                binder=exp.binder,
                retry_policy=exp.retry_policy,
                description=exp.description,
                schedules=exp.schedules,
                internal=exp.internal,
                flow=exp.flow.overridden(settings.limits.get(exp.name)),
            )
        return resolved


def describe_flow(rules: FlowRules) -> dict[str, Any]:
    """A function's flow control as JSON, for ``GET /functions``."""

    def key(option: Any) -> str | None:
        k = option.key
        return None if k is None else k if isinstance(k, str) else getattr(k, "__name__", "?")

    described: dict[str, Any] = {}
    if rules.concurrency:
        described["concurrency"] = {
            "limit": rules.concurrency.limit,
            "key": key(rules.concurrency),
        }
    if rules.rate:
        described["rate"] = {
            "limit": rules.rate.limit,
            "period": rules.rate.period_ms / 1000,
            "key": key(rules.rate),
            "on_limit": rules.rate.on_limit,
        }
    if rules.debounce:
        described["debounce"] = {
            "period": rules.debounce.period_ms / 1000,
            "key": key(rules.debounce),
        }
    return described


def _scheduled(
    name: str, schedule: str | Iterable[str], binder: Binder | None
) -> tuple[tuple[str, str], ...]:
    """The ``(id, cron)`` pairs of ``schedule=``, checked now: each cron is valid, and
    the function can be called without arguments (a scheduled call passes none).

    Ids: the function's name for one cron given as a string, ``name.1``,
    ``name.2``, ... for a list. At start-up every gateway and worker creates
    them, idempotently; one stored with another definition (the cron changed in
    code, say) is replaced, with a warning in the log.
    """
    declared = declarations(name, schedule)
    if declared and binder is not None:
        try:
            binder.bind([], {})
        except Problem as problem:
            raise ValueError(
                f"{name!r} cannot run on a schedule: a scheduled call passes no arguments, "
                f"and {problem.detail}"
            ) from None
    return declared


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise ValueError(
            f"cannot expose {name!r}: a function's name is 1-128 characters of "
            "A-Z a-z 0-9 . _ ~ -, not starting with . ~ or - (it is part of URLs); "
            "pass name=... to expose it under another"
        )


def registrations(functions: Functions) -> Iterator[Exposure]:
    """The exposures whose code is present: what a process registers with the SDK."""
    return (exp for exp in functions if exp.fn is not None)


def load_functions(spec: str) -> Functions:
    """Import ``module[:attr]`` and return its :class:`Functions` (default attr: the only one).

    Raises ``ImportError`` when the module does not import and
    :class:`~resonate_web.settings.ConfigurationError` when it holds no (or
    several) ``Functions`` and none is named.
    """
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Functions):
            raise ConfigurationError(f"{spec}: {attr!r} is not a resonate_web.Functions")
        return found
    candidates = [v for v in vars(module).values() if isinstance(v, Functions)]
    if len(candidates) != 1:
        raise ConfigurationError(
            f"{module_name}: found {len(candidates)} Functions objects; "
            f"name one as {module_name}:ATTR"
        )
    return candidates[0]


__all__ = [
    "SDK_DEFAULT_RETRY_POLICY",
    "Binder",
    "Exposed",
    "Exposure",
    "Functions",
    "Mode",
    "describe_retry_policy",
    "load_functions",
    "registrations",
    "resolved_signature",
]
