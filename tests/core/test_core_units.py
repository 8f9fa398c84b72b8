"""The framework-free pieces on their own: settings, parsing, exposure, documents."""

from __future__ import annotations

import base64
import pickle

import pydantic
import pytest
from resonate.context import Context

from resonate_web import ConfigurationError, Functions, Settings
from resonate_web._core.invocations import error_of, exception_class_name
from resonate_web._core.parsing import idempotency_key, parse_json, parse_wait, validate_id
from resonate_web.problems import Problem, all_slugs, status_of


class CustomError(Exception):
    pass


# ── settings ──────────────────────────────────────────────────────────────


def test_settings_precedence_keywords_over_config_over_environment() -> None:
    env = {
        "RESONATE_URL": "http://env:8001",
        "RESONATE_GROUP": "envgroup",
        "RESONATE_WAIT_CAP": "9",
    }
    settings = Settings.load({"RESONATE_GROUP": "cfg", "TARGET": "jobs"}, environ=env, wait_cap=3)
    assert settings.url == "http://env:8001"
    assert settings.group == "cfg"
    assert settings.target == "jobs"
    assert settings.wait_cap == 3.0
    assert settings.backend == "http"


def test_settings_defaults_to_the_embedded_backend() -> None:
    settings = Settings.load(environ={})
    assert settings.backend == "embedded"
    assert settings.prefix == "/resonate"
    assert settings.wait_cap == 30
    assert settings.body_limit == 1024 * 1024
    assert settings.backend_timeout == 5


def test_postgres_dsn_selects_the_postgres_backend() -> None:
    settings = Settings.load(environ={"RESONATE_URL": "postgresql://u:p@localhost/db"})
    assert settings.backend == "postgres"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("url", "ftp://x", "postgresql://"),
        ("wait_cap", "-1", "WAIT_CAP"),
        ("wait_cap", "nan", "WAIT_CAP"),
        ("body_limit", "1.5", "BODY_LIMIT"),
        ("prefix", "resonate", "PREFIX"),
        ("prefix", "/resonate/", "PREFIX"),
        ("group", "a/b", "GROUP"),
        ("promises", "maybe", "PROMISES"),
    ],
)
def test_bad_values_are_reported_with_their_name(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.load({key: value}, environ={})


def test_unknown_keys_are_errors_but_foreign_environment_is_ignored() -> None:
    with pytest.raises(ConfigurationError, match="unknown resonate-web setting 'WAIT'"):
        Settings.load({"WAIT": 1}, environ={})
    assert Settings.load(environ={"RESONATE_SOMETHING_ELSE": "x"}).backend == "embedded"


# ── parsing ───────────────────────────────────────────────────────────────


def test_strict_json_accepts_ordinary_documents() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x", null, true]}', max_depth=64) == {
        "a": [1, 2.5, "x", None, True]
    }
    assert parse_json(b"[" * 64 + b"]" * 64, max_depth=64) == eval("[" * 64 + "]" * 64)
    # Brackets inside strings are not nesting.
    assert parse_json(b'["' + b"[{" * 50 + b'"]', max_depth=64) == ["[{" * 50]
    assert parse_json(b'{"a": {"b": [[1]]}}', max_depth=4) == {"a": {"b": [[1]]}}


@pytest.mark.parametrize(
    "raw", [b"NaN", b"[Infinity]", b"[1e400]", b'{"a":1,"a":2}', b"[" * 65 + b"]" * 65, b"\xc3("]
)
def test_strict_json_rejects(raw: bytes) -> None:
    with pytest.raises(Problem) as info:
        parse_json(raw, max_depth=64)
    assert info.value.slug == "invalid-json"


def test_strict_json_counts_nesting_not_brackets() -> None:
    with pytest.raises(Problem, match="deeper than 3"):
        parse_json(b'{"a": {"b": [[1]]}}', max_depth=3)
    with pytest.raises(Problem, match="deeper than 3"):
        parse_json(b'[[[["' + b"]" * 9 + b'"]]]]', max_depth=3)


def test_ids() -> None:
    assert validate_id("order-42.v1_~x") == "order-42.v1_~x"
    for bad in ("", ".a", "a..b", "a:b", "a/b", "x" * 257, "ü"):
        with pytest.raises(Problem):
            validate_id(bad)
    assert idempotency_key('"abc-1"') == "abc-1"
    assert idempotency_key("  plain-9 ") == "plain-9"


def test_wait() -> None:
    assert parse_wait(None, 30) == 0
    assert parse_wait("2.5", 30) == 2.5
    assert parse_wait("100", 30) == 30
    assert parse_wait("0", 30) == 0
    for bad in ("-0.1", "nan", "inf", "x", "", "1_0"):
        with pytest.raises(Problem):
            parse_wait(bad, 30)


def test_every_slug_has_a_4xx_or_5xx_status_and_a_client_exception_of_its_name() -> None:
    from resonate_web import client

    assert all(400 <= status_of(slug) < 600 for slug in all_slugs())
    for slug in all_slugs():
        name = "".join(word.capitalize() for word in slug.split("-"))
        assert client.PROBLEMS[slug].__name__ == name, slug
    assert set(client.PROBLEMS) == set(all_slugs())


# ── exposure ──────────────────────────────────────────────────────────────


def _greet(ctx: Context, name: str, *, times: int = 1) -> str:
    return name * times


def _pos(ctx: Context, a: int, /, *rest: int, **extra: str) -> int:
    return a


class Order(pydantic.BaseModel):
    order_id: str
    cents: int = 0


def test_binding_is_canonical() -> None:
    functions = Functions()
    functions.expose(_greet)
    exposed = functions.resolve(Settings.load(environ={}))["_greet"]
    assert exposed.mode == "inline"
    assert exposed.bind(["a"], {}) == (["a"], {"times": 1})
    assert exposed.bind([], {"name": "a", "times": 1}) == (["a"], {"times": 1})
    with pytest.raises(Problem):
        exposed.bind(["a", 2], {})


def test_binding_keeps_positional_only_and_variadics() -> None:
    functions = Functions()
    functions.expose(_pos)
    exposed = functions.resolve(Settings.load(environ={}))["_pos"]
    assert exposed.bind([1, 2, 3], {"k": "v"}) == ([1, 2, 3], {"k": "v"})
    with pytest.raises(Problem):
        exposed.bind([1, "x"], {})


def test_auto_mode_dispatches_when_a_server_is_configured() -> None:
    functions = Functions()
    functions.expose(_greet)
    functions.expose_remote("charge", signature=Order, target="billing")
    resolved = functions.resolve(Settings.load(environ={}, url="http://127.0.0.1:1"))
    assert resolved["_greet"].mode == "dispatch"
    assert resolved["_greet"].target == "workers"
    assert resolved["charge"].target == "billing"
    assert resolved["charge"].bind(["o-1"], {}) == ([], {"order_id": "o-1", "cents": 0})


def test_exposing_twice_is_an_error() -> None:
    functions = Functions()
    functions.expose(_greet)
    with pytest.raises(ValueError, match="already exposed"):
        functions.expose(_greet)


# ── documents ─────────────────────────────────────────────────────────────


def _pickled(exc: BaseException, protocol: int) -> str:
    return base64.b64encode(pickle.dumps(exc, protocol=protocol)).decode()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_exception_class_is_read_without_unpickling(protocol: int) -> None:
    assert exception_class_name(_pickled(ValueError("x"), protocol)) == "ValueError"
    assert exception_class_name(_pickled(CustomError("x"), protocol)) == "CustomError"


def test_a_pickle_that_would_run_code_is_only_read() -> None:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("side effect",))

    payload = base64.b64encode(pickle.dumps(Exploit())).decode()
    error = error_of({"message": "m", "__py_pickle": payload})
    assert error == {"type": "print", "message": "m"}
    assert error_of({"message": "only"}) == {"type": "Error", "message": "only"}
    assert exception_class_name("not base64!") is None


def test_launch_nonces_are_unique_and_a_forked_child_draws_its_own() -> None:
    """A gunicorn worker forked from a preloaded app must not repeat its parent's (or
    a sibling's) nonces: two creates of one id would each think they made it."""
    import subprocess
    import sys

    from resonate_web._core.search import Launch

    assert len({Launch("x").nonce for _ in range(1000)}) == 1000
    # Forked from a fresh process of one thread (this one runs servers' threads).
    script = (
        "import os\n"
        "from resonate_web._core.search import Launch\n"
        "parent = Launch('x').nonce\n"
        "read, write = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.write(write, Launch('x').nonce.encode())\n"
        "    os._exit(0)\n"
        "os.close(write)\n"
        "os.wait()\n"
        "print(parent, os.read(read, 100).decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    parent, child = out.stdout.split()
    assert parent[:16] != child[:16]
