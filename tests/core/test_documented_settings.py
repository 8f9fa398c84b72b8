"""Every setting the docs name is accepted by every framework's configuration;
an empty secret is refused everywhere; every unknown name gets a "did you mean".

The names are read from README.md and docs/*.md, so a setting documented but not
accepted (Django's ``AUTHORIZE`` once failed ``manage.py check``) fails here.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask

from resonate_web import Functions, Settings
from resonate_web._gateway.auth import Principal
from resonate_web.fastapi import ResonateRouter
from resonate_web.flask import Resonate
from resonate_web.settings import VARIABLES, ConfigurationError
from tests.support import procs
from tests.support.django_app import setup
from tests.support.functions import build

setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.test import override_settings  # noqa: E402

from resonate_web.django import conf  # noqa: E402
from resonate_web.django.checks import check_resonate  # noqa: E402

DOCS = [procs.ROOT / "README.md", *sorted((procs.ROOT / "docs").glob("*.md"))]
FUNCTIONS = "tests.support.django_functions:functions"

#: Named in the docs as what a typo looks like, not as a setting.
TYPO_EXAMPLES = {"RESONATE_UR"}

#: A value for each setting, as text (as the environment holds it), and what it parses to.
SAMPLES: dict[str, tuple[str, Any]] = {
    "url": ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
    "token": ("s3cret-token", "s3cret-token"),
    "group": ("web", "web"),
    "target": ("billing", "billing"),
    "prefix": ("/api", "/api"),
    "wait_cap": ("7", 7.0),
    "body_limit": ("2048", 2048),
    "json_depth": ("9", 9),
    "backend_timeout": ("3", 3.0),
    "shutdown_timeout": ("4", 4.0),
    "max_waiters": ("12", 12),
    "lease_ttl": ("20", 20.0),
    "keepalive": ("6", 6.0),
    "embedded_retention": ("60", 60.0),
    "embedded_keep": ("50", 50),
    "ui": ("1", True),
    "promises": ("any", "any"),
    "limits": (
        '{"export": {"concurrency": 1, "rate": {"limit": 10, "period": 60}}}',
        {"export": {"concurrency": 1, "rate": {"limit": 10, "period": 60.0}}},
    ),
    "auth_token": ("s3cret-token", "s3cret-token"),
    "auth_jwt_key": ("k" * 32, "k" * 32),
    "auth_jwt_algorithms": ("HS256", ("HS256",)),
    "auth_jwt_audience": ("shop", "shop"),
    "auth_jwt_issuer": ("https://issuer.example", "https://issuer.example"),
}
#: What a JWT setting needs beside it to be usable.
JWT = {"auth_jwt_key": "k" * 32, "auth_jwt_algorithms": "HS256"}


def allow_all(request: Any, action: str, resource: str | None) -> Principal | None:
    return None


def _docs() -> str:
    return "\n".join(path.read_text() for path in DOCS)


def documented_variables() -> list[str]:
    found = {m.rstrip("_") for m in re.findall(r"\bRESONATE_[A-Z_]+", _docs())}
    return sorted(found - TYPO_EXAMPLES)


def documented_settings() -> list[str]:
    """The settings the docs name, as environment variables or a Django key."""
    names = {v.removeprefix("RESONATE_").lower() for v in documented_variables()}
    names |= {k.lower() for k in documented_django_keys()} - {
        "functions",
        "authorize",
    }  # Django's own keys
    return sorted(names - {"log_level"})  # the CLI's, not a setting (see below)


def documented_django_keys() -> list[str]:
    """Keys the docs put in ``settings.RESONATE``: ``RESONATE["X"]`` and dict literals."""
    text = _docs()
    keys = set(re.findall(r"RESONATE\[['\"]([A-Z_]+)['\"]\]", text))
    for literal in re.findall(r"^RESONATE = \{(.*)$", text, flags=re.M):
        keys |= set(re.findall(r"['\"]([A-Z_]+)['\"]\s*:", literal))
    return sorted(keys)


def _with_companions(name: str, raw: Any) -> dict[str, Any]:
    values = dict(JWT) if name.startswith("auth_jwt") else {}
    values[name] = raw
    return values


def test_the_docs_name_settings_at_all() -> None:
    assert {"url", "auth_token", "wait_cap"} <= set(documented_settings())
    assert {"FUNCTIONS", "AUTHORIZE", "UI"} <= set(documented_django_keys())


@pytest.mark.parametrize("variable", documented_variables())
def test_every_documented_variable_is_known(
    variable: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert variable in VARIABLES
    name = variable.removeprefix("RESONATE_").lower()
    with caplog.at_level(logging.WARNING, logger="resonate_web"):
        if name in SAMPLES:
            environ = {
                f"RESONATE_{k.upper()}": v
                for k, v in _with_companions(name, SAMPLES[name][0]).items()
            }
            assert getattr(Settings.load(environ=environ), name) == SAMPLES[name][1]
        else:
            Settings.load(environ={variable: "INFO"})
    assert variable not in caplog.text


@pytest.mark.parametrize("name", documented_settings())
def test_every_documented_setting_is_accepted_by_flask_config(name: str) -> None:
    assert name in SAMPLES, f"the docs name a setting {name!r} the tests have no value for"
    app = Flask(__name__)
    for key, raw in _with_companions(name, SAMPLES[name][0]).items():
        app.config[f"RESONATE_{key.upper()}"] = raw
    Resonate(functions=Functions()).init_app(app)
    assert getattr(app.extensions["resonate"].settings, name) == SAMPLES[name][1]


@pytest.mark.parametrize("name", documented_settings())
def test_every_documented_setting_is_accepted_by_fastapi(name: str) -> None:
    router = ResonateRouter(Functions(), **_with_companions(name, SAMPLES[name][0]))
    if name == "prefix":  # the router's own argument: where it mounts
        assert router.prefix == SAMPLES[name][1]
    else:
        assert getattr(router.settings, name) == SAMPLES[name][1]


@pytest.mark.parametrize(
    "key", sorted({*documented_django_keys(), *map(str.upper, documented_settings())})
)
def test_every_documented_key_passes_django_checks(key: str) -> None:
    name = key.lower()
    values: dict[str, Any] = {"FUNCTIONS": [FUNCTIONS]}
    if key == "AUTHORIZE":
        values[key] = f"{__name__}.allow_all"
    elif key != "FUNCTIONS":
        values |= {k.upper(): v for k, v in _with_companions(name, SAMPLES[name][0]).items()}
    with override_settings(RESONATE=values):
        errors = [m for m in check_resonate() if m.id in ("resonate_web.E001", "resonate_web.E002")]
        assert errors == []
        if key == "AUTHORIZE":
            assert conf.load_authorize(values) is allow_all
        elif key != "FUNCTIONS":
            assert getattr(conf.load_settings(), name) == SAMPLES[name][1]


# ── an empty secret is refused, wherever it is set ─────────────────────────

SECRETS = ["auth_token", "auth_jwt_key", "token"]


@pytest.mark.parametrize("empty", ["", "  "])
@pytest.mark.parametrize("name", SECRETS)
def test_an_empty_secret_is_refused_by_every_configuration_path(name: str, empty: str) -> None:
    key = name.upper()
    said = rf"setting {key}: empty"
    with pytest.raises(ConfigurationError, match=said):
        Settings.load(environ={f"RESONATE_{key}": empty})
    with pytest.raises(ConfigurationError, match=said):
        ResonateRouter(Functions(), **{name: empty})
    app = Flask(__name__)
    app.config[f"RESONATE_{key}"] = empty
    with pytest.raises(ConfigurationError, match=said):
        Resonate(functions=Functions()).init_app(app)
    with override_settings(RESONATE={"FUNCTIONS": [FUNCTIONS], key: empty}):
        (error,) = check_resonate()
        assert error.id == "resonate_web.E002" and re.search(said, error.msg)
        with pytest.raises(ImproperlyConfigured, match=said):
            conf.state()


def test_an_empty_auth_token_never_serves_without_authentication() -> None:
    with pytest.raises(ConfigurationError, match="AUTH_TOKEN"):
        Settings.load(environ={"RESONATE_AUTH_TOKEN": ""})
    app = FastAPI()
    app.include_router(ResonateRouter(build(), auth_token="right"))
    with TestClient(app) as client:
        assert client.get("/resonate/functions").status_code == 401


# ── did you mean, everywhere ───────────────────────────────────────────────


def test_an_unknown_flask_config_key_names_the_closest() -> None:
    app = Flask(__name__)
    app.config["RESONATE_WAIT_CAPP"] = 5
    with pytest.raises(
        ConfigurationError, match=r"'RESONATE_WAIT_CAPP'; did you mean 'RESONATE_WAIT_CAP'\?"
    ):
        Resonate(functions=Functions()).init_app(app)


def test_an_unknown_keyword_setting_names_the_closest() -> None:
    with pytest.raises(ConfigurationError, match=r"'wiat_cap'; did you mean 'wait_cap'\?"):
        ResonateRouter(Functions(), wiat_cap=5)


def test_an_unknown_django_key_names_the_closest() -> None:
    values = {"FUNCTIONS": [FUNCTIONS], "AUTHORIZ": f"{__name__}.allow_all", "WAIT": 1}
    with override_settings(RESONATE=values):
        (error,) = check_resonate()
        assert error.id == "resonate_web.E001"
        assert "'AUTHORIZ': did you mean 'AUTHORIZE'?" in error.msg
        assert "'WAIT': did you mean 'WAIT_CAP'?" in error.msg
        with pytest.raises(ImproperlyConfigured, match="did you mean 'AUTHORIZE'"):
            conf.state()
    conf.reset()


def test_an_unknown_function_names_the_closest() -> None:
    app = FastAPI()
    app.include_router(ResonateRouter(build()))
    with TestClient(app) as client:
        response = client.post("/resonate/functions/ad", json={"args": [1, 2]})
        assert response.status_code == 404
        assert "did you mean 'add'?" in response.json()["detail"]
        listed = client.get("/resonate/invocations", params={"function": "ad"})
        assert "did you mean 'add'?" in listed.json()["detail"]
        assert "did you mean" not in client.post("/resonate/functions/zzzzzz").json()["detail"]


# ── make demo's variables ──────────────────────────────────────────────────


def test_the_readme_says_how_to_move_make_demo() -> None:
    makefile = (procs.ROOT / "Makefile").read_text()
    variables = re.findall(r"^(\w+)\s*\?=", makefile, flags=re.M)
    recipe = re.search(r"^demo:.*?(?=^\S)", makefile, flags=re.M | re.S)
    assert recipe is not None
    used = [v for v in variables if f"$({v})" in recipe.group(0)]
    assert {"HOST", "PORT"} <= set(used)
    readme = (procs.ROOT / "README.md").read_text()
    for variable in used:
        assert re.search(rf"`make demo [^`]*\b{variable}=|`{variable}=", readme), variable
