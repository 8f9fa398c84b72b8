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
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import pydantic
from resonate.retry import RetryPolicy

from resonate_web.problems import Problem
from resonate_web.settings import Settings

Mode = Literal["inline", "dispatch"]
DurableFn = Callable[..., Any]
SignatureSource = Callable[..., Any] | type[pydantic.BaseModel]


def _resolve(annotation: Any, globalns: dict[str, Any]) -> Any:
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        try:
            return eval(annotation, globalns, vars(builtins))  # noqa: S307 - annotations only
        except Exception:
            return Any
    return annotation


def _user_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """The signature of ``fn`` without its leading ``ctx``, annotations resolved."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(f"{fn!r}: a durable function takes a Context as its first argument")
    globalns = getattr(inspect.unwrap(fn), "__globals__", {})
    return sig.replace(
        parameters=[p.replace(annotation=_resolve(p.annotation, globalns)) for p in params[1:]],
        return_annotation=_resolve(sig.return_annotation, globalns),
    )


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

    def __init__(self, name: str, signature: inspect.Signature) -> None:
        self.name = name
        self.signature = signature
        fields: dict[str, Any] = {}
        self._var_positional = False
        for index, param in enumerate(signature.parameters.values()):
            annotation = param.annotation
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                annotation = list[annotation]  # type: ignore[valid-type]
                self._var_positional = True
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
            validated = self.model.model_validate_json(json.dumps(bound.arguments), strict=True)
        except pydantic.ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
            raise Problem(
                "invalid-arguments",
                f"{self.name}: arguments do not match the declared types",
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
                param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and self._var_positional
            ):
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

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "mode": self.mode,
            "target": self.target,
            "parameters": self.binder.json_schema() if self.binder else None,
        }

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
    ) -> Any:
        """Expose a durable function (``def fn(ctx, ...)``). Usable as a decorator."""
        if fn is None:
            return functools.partial(
                self.expose,
                name=name,
                version=version,
                mode=mode,
                target=target,
                retry_policy=retry_policy,
                timeout=timeout,
            )
        exposed_name: str = name or str(getattr(fn, "__name__", ""))
        self._add(
            Exposure(
                name=exposed_name,
                version=version,
                mode=mode,
                target=target,
                fn=fn,
                retry_policy=retry_policy,
                timeout=timeout,
                binder=Binder(exposed_name, _user_signature(fn)),
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
    ) -> None:
        """Expose a function that only workers have: dispatched by name.

        ``signature`` is a stub with the worker function's parameters
        (``def charge(ctx, order_id: str, cents: int): ...``) or a pydantic model
        of its keyword arguments; without one, arguments are passed as sent.
        """
        binder = None
        if isinstance(signature, type) and issubclass(signature, pydantic.BaseModel):
            binder = Binder(name, _model_signature(signature))
        elif signature is not None:
            binder = Binder(name, _user_signature(signature))
        self._add(
            Exposure(
                name=name,
                version=version,
                mode="dispatch",
                target=target,
                timeout=timeout,
                binder=binder,
            )
        )

    def include(self, other: Functions) -> None:
        """Expose everything ``other`` exposes (a name exposed in both is an error)."""
        for exposure in other:
            self._add(exposure)

    def _add(self, exposure: Exposure) -> None:
        if not exposure.name:
            raise ValueError("an exposed function needs a name")
        if exposure.name in self._by_name:
            raise ValueError(f"function {exposure.name!r} is already exposed")
        if exposure.version < 1:
            raise ValueError("version must be >= 1")
        self._by_name[exposure.name] = exposure

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
            )
        return resolved


def registrations(functions: Functions) -> Iterator[Exposure]:
    """The exposures whose code is present: what a process registers with the SDK."""
    return (exp for exp in functions if exp.fn is not None)


__all__ = ["Binder", "Exposed", "Exposure", "Functions", "Mode", "registrations"]
