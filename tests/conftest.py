from __future__ import annotations

import uuid

import pytest

#: Modules whose every test starts real processes (marked ``multiprocess``).
MULTIPROCESS_MODULES = {
    "test_devserver",
    "test_distributed",
    "test_distributed_example",
    "test_distributed_schedules",
    "test_django_worker",
    "test_examples",
    "test_flask_server",
    "test_real_servers",
    "test_worker",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in MULTIPROCESS_MODULES or "-gunicorn" in item.name or "-uvicorn" in item.name:
            item.add_marker(pytest.mark.multiprocess)


@pytest.fixture
def uid() -> str:
    return "t-" + uuid.uuid4().hex[:12]
