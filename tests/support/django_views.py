"""A view of the application's own: an order row and its durable work, in one transaction."""

from __future__ import annotations

from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from resonate_web.django import dispatch
from tests.support import django_tasks
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
            id = django_tasks.record.enqueue(out, key).id
        else:
            id = dispatch("note", out, key)
    return JsonResponse({"id": id})
