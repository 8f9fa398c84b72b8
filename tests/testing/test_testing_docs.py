"""docs/testing.md, run as written: its module blocks are imported under the names
they give (``# file: shop/durable.py`` is ``shop.durable``), and every test of its
test blocks runs as pytest would run it, with the ``resonate_clock`` fixture."""

from __future__ import annotations

import inspect
import re
import sys
import types
import unittest
from typing import Any

import pytest

from resonate_web.testing import virtual_time
from tests.support import procs
from tests.support.django_app import setup

setup()

DOC = procs.ROOT / "docs" / "testing.md"


def blocks() -> list[tuple[str, str]]:
    text = DOC.read_text()
    found = []
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        first = block.splitlines()[0]
        match = re.fullmatch(r"# file: (\S+)\.py", first)
        assert match, f"a python block of docs/testing.md names no file: {first!r}"
        found.append((match.group(1), block))
    return found


def _module(path: str, code: str) -> types.ModuleType:
    name = path.replace("/", ".")
    parts = name.split(".")
    for n in range(1, len(parts)):
        package = ".".join(parts[:n])
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = []
            sys.modules[package] = module
    module = types.ModuleType(name)
    module.__file__ = f"docs/testing.md:{path}.py"
    sys.modules[name] = module
    exec(compile(code, module.__file__, "exec"), module.__dict__)
    return module


MODULES = {path: _module(path, code) for path, code in blocks() if not path.startswith("tests/")}
TESTS = {path: code for path, code in blocks() if path.startswith("tests/")}


def cases() -> list[tuple[str, str]]:
    found = []
    for path, code in TESTS.items():
        names = re.findall(r"^def (test_\w+)", code, re.M)
        names += [
            f"{cls}.{m}"
            for cls in re.findall(r"^class (\w+)\(unittest", code, re.M)
            for m in re.findall(r"^    def (test_\w+)", code, re.M)
        ]
        found.extend((path, name) for name in names)
    return found


def test_the_doc_has_modules_and_tests() -> None:
    assert "shop/durable" in MODULES
    assert {"tests/test_fastapi", "tests/test_flask", "tests/test_django"} <= set(TESTS)


@pytest.mark.parametrize(("path", "name"), cases(), ids=lambda v: str(v))
def test_the_doc_test_passes(path: str, name: str) -> None:
    module = _module(path, TESTS[path])
    if "." in name:
        cls, method = name.split(".")
        result = unittest.TextTestRunner(verbosity=0).run(getattr(module, cls)(method))
        assert result.wasSuccessful(), result.failures + result.errors
        return
    test: Any = getattr(module, name)
    # The markers pytest would apply, then the fixture it would give.
    with virtual_time() as clock:
        if "resonate_clock" in inspect.signature(test).parameters:
            test(resonate_clock=clock)
        else:
            test()
