"""A view of the application's own: an order row and its durable work, in one transaction."""

from __future__ import annotations

import json
from datetime import timedelta

from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from resonate_web.django import dispatch
from tests.support.django_functions import ORDERS


@csrf_exempt
def place_order(request: HttpRequest, key: str) -> JsonResponse:
    """Insert the order and start ``note`` (``?via=task``: enqueue the ``record`` task)
    writing to the file ``?out=``, in one transaction."""
    out = request.GET["out"]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {ORDERS} (order_key TEXT)")
            cursor.execute(f"INSERT INTO {ORDERS} (order_key) VALUES (%s)", [key])
        if request.GET.get("via") == "task":
            from tests.support import django_tasks  # django.tasks: Django 6.0 and later

            id = django_tasks.record.enqueue(out, key).id
        else:
            id = dispatch("note", out, key)
    return JsonResponse({"id": id})


@csrf_exempt
def enqueue_task(request: HttpRequest, name: str) -> JsonResponse:
    """Enqueue task ``name`` of the test tasks with the JSON list body as its arguments
    (``?delay=`` seconds: deferred that long)."""
    from tests.support import django_tasks

    task = getattr(django_tasks, name)
    delay = request.GET.get("delay")
    if delay:
        task = task.using(run_after=timezone.now() + timedelta(seconds=float(delay)))
    result = task.enqueue(*json.loads(request.body or b"[]"))
    return JsonResponse({"id": result.id, "status": result.status})


def task_result(request: HttpRequest, id: str) -> JsonResponse:
    """A task result as JSON, read with ``get_result``."""
    from django.tasks import TaskResultStatus, default_task_backend

    result = default_task_backend.get_result(id)
    body: dict[str, object] = {"id": result.id, "status": result.status}
    if result.status == TaskResultStatus.SUCCESSFUL:
        body["return_value"] = result.return_value
    if result.errors:
        body["errors"] = [e.exception_class_path for e in result.errors]
    return JsonResponse(body)


async def runtime_loop(request: HttpRequest) -> JsonResponse:
    """Whether the runtime runs on the loop serving this async view (the server's)."""
    import asyncio

    from resonate_web.django import conf

    return JsonResponse({"same_loop": conf.state().portal.loop is asyncio.get_running_loop()})
