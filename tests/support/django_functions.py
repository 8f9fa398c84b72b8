"""The test functions, plus one that reads the database (as a Django function would)."""

from __future__ import annotations

from django.db import connection
from resonate.context import Context

from tests.support.functions import build

ORDERS = "resonate_test_orders"

functions = build()


@functions.expose
def orders_seen(ctx: Context, key: str) -> int:
    """How many committed rows of ``ORDERS`` carry ``key``."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {ORDERS} WHERE order_key = %s", [key])
        (count,) = cursor.fetchone()
    return int(count)


@functions.expose
def note(ctx: Context, path: str, token: str) -> str:
    """Append ``token`` to the file at ``path``: each execution leaves one line."""
    with open(path, "a") as out:
        out.write(token + "\n")
    return token
