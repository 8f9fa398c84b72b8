"""The cost of ``GET /functions/{name}/stats`` on Postgres at 100,000 stored invocations.

A private cluster (tests/support/postgres.py) with resonate-pg's schema; rows are
inserted directly: ``--invocations`` root invocations (default 100,000) spread
over 8 functions and the last ``--hours`` hours (default 24), each with two
step promises beside it (as ``ctx.run`` leaves them), in the states a busy
system holds. Then the statistics query resonate-web sends (``_search.PG_STATS``)
is timed for one function over a one-hour and a 30-day window, and so is the
tag-filtered list page (``_search.PG_SEARCH``), each the median of ``--runs``
runs; once as resonate-pg ships its schema and once with a GIN index on
``tags`` (which the schema leaves out). Prints one JSON object.

    PYTHONPATH=src:. python bench/bench_stats.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import psycopg

from resonate_web._core import search as _search
from resonate_web._gateway import operations
from tests.support import postgres

FUNCTIONS = 8
#: The index resonate-pg's schema leaves out, which turns tag matches into index searches.
GIN = "CREATE INDEX promises_tags_gin ON resonate.promises USING gin (tags jsonb_path_ops)"

INSERT = """
INSERT INTO resonate.promises (id, state, param_data, value_data, tags, timeout_at,
                               created_at, settled_at)
SELECT id, state, NULL, NULL, tags, created + 86400000, created,
       CASE WHEN state = 'pending' THEN NULL ELSE created + duration END
FROM (
  SELECT 'inv-' || n AS id,
         (ARRAY['resolved','resolved','resolved','resolved','resolved','resolved',
                'rejected','rejected_canceled','pending','rejected_timedout'])[1 + n %% 10]
           AS state,
         jsonb_build_object(
           'resonate:origin', 'inv-' || n, 'resonate:parent', 'inv-' || n,
           'resonate:scope', 'global',
           'resonate-web:invocation', 'true',
           'resonate-web:function', 'fn' || (n %% %(functions)s),
           'resonate-web:tag:customer', 'c-' || (n %% 1000)) AS tags,
         %(now)s - (n::bigint * %(spread)s / %(count)s) AS created,
         (10 + (n * 7919) %% 5000)::bigint AS duration
  FROM generate_series(1, %(count)s) AS n
) rows
"""

STEPS = """
INSERT INTO resonate.promises (id, state, tags, timeout_at, created_at, settled_at)
SELECT 'inv-' || n || ':' || s, 'resolved',
       jsonb_build_object('resonate:origin', 'inv-' || n, 'resonate:parent', 'inv-' || n,
                          'resonate:scope', 'local'),
       %(now)s + 86400000, %(now)s - (n::bigint * %(spread)s / %(count)s),
       %(now)s - (n::bigint * %(spread)s / %(count)s) + 5
FROM generate_series(1, %(count)s) AS n, generate_series(1, 2) AS s
"""


def _median_ms(conn: psycopg.Connection[Any], sql: str, params: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        conn.execute(sql, params).fetchall()
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 2)


def _plan(conn: psycopg.Connection[Any], sql: str, params: Any) -> str:
    rows = conn.execute("EXPLAIN " + sql, params).fetchall()
    nodes = [str(r[0]).strip() for r in rows if "Scan" in str(r[0])]
    return "; ".join(n.split("  (")[0].lstrip("-> ") for n in nodes)


def measure(conn: psycopg.Connection[Any], now: int, runs: int) -> dict[str, Any]:
    tags = {_search.FUNCTION_TAG: "fn3"}
    count = operations.BUCKETS
    hour = _search.pg_stats_parameters(tags, now - 3600 * 1000, 3600 * 1000 // count, count)
    month_ms = 30 * 86400 * 1000
    month = _search.pg_stats_parameters(tags, now - month_ms, month_ms // count, count)
    page = _search.pg_parameters(
        {"tags": {_search.INVOCATION_TAG: "true", _search.USER_TAG + "customer": "c-7"}}
    )
    page[-1] = 21
    return {
        "stats_1h_ms": _median_ms(conn, _search.PG_STATS, hour, runs),
        "stats_30d_ms": _median_ms(conn, _search.PG_STATS, month, runs),
        "list_by_tag_ms": _median_ms(conn, _search.PG_SEARCH, page, runs),
        "stats_plan": _plan(conn, _search.PG_STATS, hour),
        "stats_30d_result": list(conn.execute(_search.PG_STATS, month).fetchone() or ()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invocations", type=int, default=100_000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()
    now = int(time.time() * 1000)
    params = {
        "now": now,
        "count": options.invocations,
        "spread": options.hours * 3600 * 1000,
        "functions": FUNCTIONS,
    }
    with postgres.cluster() as cluster:
        dsn = cluster.database("stats")
        with psycopg.connect(dsn, autocommit=True) as conn:
            began = time.perf_counter()
            conn.execute(INSERT, params)
            conn.execute(STEPS, params)
            conn.execute("VACUUM ANALYZE resonate.promises")
            rows = conn.execute("SELECT count(*) FROM resonate.promises").fetchone()
            loaded = round(time.perf_counter() - began, 1)
            plain = measure(conn, now, options.runs)
            conn.execute(GIN)
            conn.execute("ANALYZE resonate.promises")
            indexed = measure(conn, now, options.runs)
    row = plain.pop("stats_30d_result")
    float_result = [float(v) if v is not None else None for v in row[:8]]
    buckets = len(row[8]) if len(row) > 8 else None
    indexed.pop("stats_30d_result")
    print(
        json.dumps(
            {
                "invocations": options.invocations,
                "rows": rows[0] if rows else None,
                "functions": FUNCTIONS,
                "hours": options.hours,
                "load_s": loaded,
                "as_shipped": plain,
                "with_gin_index": indexed,
                "fn3_30d_row": float_result,
                "fn3_30d_buckets_with_starts": buckets,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
