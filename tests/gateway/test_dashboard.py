"""The dashboard in a real browser (the system's Chromium, driven by Playwright)
against a real uvicorn server: start, watch live, approve, reject, and with a token.

Set ``DASHBOARD_SCREENSHOTS=docs`` to write the screenshots the docs show.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import procs

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium): the dashboard's browser "
        "tests do not run",
        allow_module_level=True,
    )

expect = playwright_api.expect
expect.set_options(timeout=30_000)
SHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")
APP = "tests.support.fastapi_app:app"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=ARGS,
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with procs.uvicorn(APP, env={"RESONATE_UI": "1"}) as base:
        yield base


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"dashboard-{name}.png"))


def row(page: Any, id: str) -> Any:
    return page.locator(f'#invocations li[data-id="{id}"]')


def start_from_form(page: Any, function: str, args: str, id: str) -> None:
    page.select_option("#start-function", function)
    page.fill("#start-args", args)
    page.fill("#start-id", id)
    page.click("#start-button")


def test_start_watch_live_and_approve(server: str, page: Any) -> None:
    page.goto(f"{server}/resonate/ui")
    expect(page.locator("#live")).to_have_text("live")

    # Started elsewhere (plain HTTP): the list shows it pending, no reload, then settled.
    other = "ui-other-" + uuid.uuid4().hex[:8]
    resp = httpx.post(
        f"{server}/resonate/functions/approval", params={"id": other}, json={"args": ["other"]}
    )
    assert resp.status_code == 202
    expect(row(page, other)).to_have_attribute("data-status", "pending")

    # Started from the form: its detail opens, pending, awaiting one promise.
    mine = "ui-approval-" + uuid.uuid4().hex[:8]
    start_from_form(page, "approval", '{"args": ["ship it"]}', mine)
    expect(row(page, mine)).to_have_attribute("data-status", "pending")
    expect(page.locator("#detail-id")).to_have_text(mine)
    awaited = page.locator("#awaiting-list li")
    expect(awaited).to_have_count(1)
    expect(page.locator("#cancel-button")).to_be_visible()
    expect(page.locator("#tree .step").first).to_contain_text("approval")
    shot(page, "pending")

    awaited.locator("textarea").fill('{"approved": true}')
    awaited.locator("button.approve").click()
    expect(page.locator("#detail-facts .badge")).to_have_text("resolved")
    expect(page.locator("#detail-result-value")).to_contain_text('"approved": true')
    expect(row(page, mine)).to_have_attribute("data-status", "resolved")
    expect(page.locator("#cancel-button")).to_be_hidden()
    shot(page, "resolved")

    # The other one, approved over HTTP, turns resolved in the list by itself.
    status = httpx.get(f"{server}/resonate/invocations/{other}").json()
    (promise,) = status["awaiting"]
    httpx.post(f"{server}/resonate/promises/{promise}/resolve", json={"value": 1})
    expect(row(page, other)).to_have_attribute("data-status", "resolved")


def test_rejected_shows_its_error_and_filters(server: str, page: Any) -> None:
    page.goto(f"{server}/resonate/ui")
    expect(page.locator("#live")).to_have_text("live")
    id = "ui-fail-" + uuid.uuid4().hex[:8]
    start_from_form(page, "fail", '{"args": ["the disk is full"]}', id)
    expect(page.locator("#detail-facts .badge")).to_have_text("rejected")
    expect(page.locator("#detail-error")).to_contain_text("ValueError")
    expect(page.locator("#detail-error")).to_contain_text("the disk is full")
    expect(row(page, id)).to_have_attribute("data-status", "rejected")

    page.select_option("#filter-status", "rejected")
    expect(row(page, id)).to_have_count(1)
    expect(page.locator('#invocations li:not([data-status="rejected"])')).to_have_count(0)
    shot(page, "rejected")


def test_search_by_tag_rerun_and_bulk_cancel(server: str, page: Any) -> None:
    page.goto(f"{server}/resonate/ui")
    expect(page.locator("#live")).to_have_text("live")
    batch = uuid.uuid4().hex[:8]
    # Started from the form with tags, and over HTTP with and without them.
    failed = "ui-tagged-" + batch
    page.fill("#start-tags", f"batch:{batch} kind:ui")
    start_from_form(page, "fail", '{"args": ["card declined"]}', failed)
    expect(page.locator("#detail-facts .badge")).to_have_text("rejected")
    expect(page.locator("#detail-facts")).to_contain_text(f"batch:{batch}")
    stuck = [f"ui-stuck-{batch}-{n}" for n in range(2)]
    for id in stuck:
        body = {"args": [60, "x"], "tags": {"batch": batch}}
        assert httpx.post(f"{server}/resonate/functions/slow", params={"id": id}, json=body)
    untagged = "ui-untagged-" + batch
    httpx.post(
        f"{server}/resonate/functions/slow", params={"id": untagged}, json={"args": [60, "x"]}
    )

    # Search by tag: only the tagged ones are listed.
    page.fill("#filter-tags", f"batch:{batch}")
    page.click("#filter-apply")
    expect(page.locator("#invocations li")).to_have_count(3)
    expect(row(page, untagged)).to_have_count(0)
    expect(row(page, failed)).to_contain_text(f"batch:{batch}")

    # Rerun the rejected one: a new invocation, shown with where it came from.
    row(page, failed).locator("a").click()
    expect(page.locator("#rerun-button")).to_be_visible()
    page.click("#rerun-button")
    expect(page.locator("#detail-facts")).to_contain_text("Rerun of")
    expect(page.locator("#detail-facts")).to_contain_text(failed)
    rerun_id = page.locator("#detail-id").inner_text()
    assert rerun_id != failed
    expect(page.locator("#detail-facts .badge")).to_have_text("rejected")
    assert httpx.get(f"{server}/resonate/invocations/{rerun_id}").json()["rerun_of"] == failed

    # Search by id.
    page.fill("#goto-id", failed)
    page.click("#filter-apply")
    expect(page.locator("#detail-id")).to_have_text(failed)

    # Bulk cancel of the pending ones of the batch, once confirmed.
    page.select_option("#filter-status", "pending")
    expect(page.locator("#invocations li")).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#bulk-cancel")
    expect(page.locator("#bulk-result")).to_contain_text("Canceled 2 of 2")
    for id in stuck:
        assert httpx.get(f"{server}/resonate/invocations/{id}").json()["status"] == "canceled"
    assert httpx.get(f"{server}/resonate/invocations/{untagged}").json()["status"] == "pending"
    httpx.post(f"{server}/resonate/invocations/{untagged}/cancel")
    shot(page, "bulk")


def test_the_start_form_holds_a_skeleton_of_the_parameters(server: str, page: Any) -> None:
    page.goto(f"{server}/resonate/ui")
    page.select_option("#start-function", "add")
    expect(page.locator("#start-args")).to_have_value('{"kwargs":{"a":0,"b":0}}')
    page.select_option("#start-function", "slow")
    expect(page.locator("#start-args")).to_have_value('{"kwargs":{"seconds":0,"tag":""}}')
    page.fill("#start-args", '{"args": [1, 2]}')  # edited: kept from now on
    page.select_option("#start-function", "add")
    expect(page.locator("#start-args")).to_have_value('{"args": [1, 2]}')


def test_steps_are_named_by_their_function(server: str, page: Any) -> None:
    id = "ui-wide-" + uuid.uuid4().hex[:8]
    httpx.post(f"{server}/resonate/functions/wide", params={"id": id}, json={"args": [2]})
    page.goto(f"{server}/resonate/ui#/invocations/{id}")
    names = page.locator("#tree .step .name")
    expect(names).to_have_count(4)  # the invocation, two steps, the promise
    expect(names.nth(1)).to_have_text("square")
    expect(names.nth(2)).to_have_text("square")
    httpx.post(f"{server}/resonate/invocations/{id}/cancel")


def book_trip(server: str, id: str, *args: str) -> dict[str, Any]:
    resp = httpx.post(
        f"{server}/resonate/functions/book_trip",
        params={"id": id, "wait": "10"},
        json={"args": list(args)},
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_the_timeline_shows_named_steps_their_arguments_and_results(server: str, page: Any) -> None:
    id = "ui-trip-" + uuid.uuid4().hex[:8]
    assert book_trip(server, id, "oslo", "hotel")["status"] == "rejected"
    page.goto(f"{server}/resonate/ui#/invocations/{id}")
    rows = page.locator("#tree .step-row")
    expect(rows).to_have_count(4)  # the invocation, two bookings, one release
    names = page.locator("#tree .step .name")
    expect(names).to_have_text(["book_trip", "reserve", "reserve", "release"])
    expect(rows.nth(1)).to_have_attribute("data-status", "resolved")
    expect(rows.nth(2)).to_have_attribute("data-status", "rejected")
    # Every step has a bar on the shared axis; a later step starts no earlier.
    lefts = [
        float(rows.nth(n).locator(".step-bar").evaluate("b => parseFloat(b.style.left)"))
        for n in range(4)
    ]
    assert lefts == sorted(lefts)
    # A step opens to its arguments and result; the failing one to its error.
    rows.nth(1).locator("summary").click()
    first = rows.nth(1).locator(".step-facts")
    expect(first.locator("pre.args")).to_have_text('[\n  "oslo",\n  "flight",\n  false\n]')
    expect(first.locator("pre.result")).to_have_text('"flight:oslo"')
    rows.nth(2).locator("summary").click()
    expect(rows.nth(2).locator(".error-value")).to_have_text(
        "ValueError: no hotel available for oslo"
    )
    expect(rows.nth(2).locator("pre.args")).to_contain_text('"hotel"')
    page.locator("#detail-panel h3", has_text="Timeline").scroll_into_view_if_needed()
    shot(page, "timeline")


def test_a_long_value_is_cut_with_a_way_to_see_all(server: str, page: Any) -> None:
    id = "ui-long-" + uuid.uuid4().hex[:8]
    trip = "oslo-" + "x" * 300
    book_trip(server, id, trip)
    page.goto(f"{server}/resonate/ui#/invocations/{id}")
    step = page.locator("#tree .step-row").nth(1)
    step.locator("summary").click()
    args = step.locator("pre.args")
    expect(args).to_contain_text('"oslo-xxx')
    assert args.inner_text().endswith("…") and "flight" not in args.inner_text()
    step.locator("button.more").first.click()
    expect(args).to_contain_text(trip)
    expect(args).to_contain_text('"flight"')


def test_a_function_filter_shows_its_statistics(server: str, page: Any) -> None:
    for n in range(2):
        httpx.post(
            f"{server}/resonate/functions/fail", params={"wait": "5"}, json={"args": [f"{n}"]}
        )
    page.goto(f"{server}/resonate/ui")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#stats")).to_be_hidden()
    page.select_option("#filter-function", "fail")
    expect(page.locator("#stats")).to_be_visible()
    expect(page.locator("#stats")).to_contain_text("last hour")
    expect(page.locator("#stats")).to_contain_text("failure rate 100.0%")
    expect(page.locator('#stats li[data-status="rejected"]')).not_to_have_text("rejected 0")
    # The chart: a bar of starts and one of failures in the newest intervals.
    chart = page.locator("#stats figure.chart svg")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.started")).to_have_count(30)
    failed = chart.locator("rect.failed")
    expect(failed.first).to_be_attached()
    assert failed.first.evaluate("r => r.getBBox().height") > 0
    assert int(failed.first.get_attribute("data-n") or 0) >= 1
    shot(page, "stats")


def test_a_retrying_invocation_shows_its_attempts_and_last_error(server: str, page: Any) -> None:
    id = "ui-retry-" + uuid.uuid4().hex[:8]
    api = f"{server}/resonate/invocations/{id}"
    resp = httpx.post(
        f"{server}/resonate/functions/refusing", params={"id": id}, json={"args": ["no card"]}
    )
    assert resp.status_code == 202
    try:
        page.goto(f"{server}/resonate/ui#/invocations/{id}")
        expect(page.locator("#detail-facts .badge")).to_have_text("pending")
        expect(row(page, id).locator(".retrying")).to_contain_text("failed: PermissionError")
        expect(page.locator("#detail-error")).to_contain_text("PermissionError: no card")
        expect(page.locator("#detail-error .retry")).to_contain_text("next attempt")
        shot(page, "retrying")
    finally:
        httpx.post(f"{api}/cancel")


def test_an_invocation_waiting_for_its_turn_says_why(page: Any) -> None:
    """Flow control: one ``ranked`` at a time; the second waits, and says so on its
    row and its page until it runs."""
    with procs.uvicorn("tests.support.flow_app:app", env={"RESONATE_UI": "1"}) as base:
        run = uuid.uuid4().hex[:8]
        first = httpx.post(
            f"{base}/resonate/functions/ranked",
            params={"id": f"turn-{run}-0"},
            json={"args": [0, 3]},
        )
        assert first.status_code == 202
        second = httpx.post(
            f"{base}/resonate/functions/ranked", params={"id": f"turn-{run}-1"}, json={"args": [1]}
        )
        assert second.status_code == 202
        page.goto(f"{base}/resonate/ui#/invocations/turn-{run}-1")
        expect(row(page, f"turn-{run}-1").locator(".waiting")).to_have_text(
            "waiting for concurrency"
        )
        expect(page.locator("#detail-facts")).to_contain_text("Waiting for")
        shot(page, "waiting")
        expect(page.locator("#detail-facts .badge")).to_have_text("resolved")


def test_schedules_show_with_their_next_run_and_ticks(server: str, page: Any) -> None:
    id = "ui-sched-" + uuid.uuid4().hex[:8]
    body = {"id": id, "cron": "0 0 1 1 *", "function": "add", "args": [1, 2]}
    assert httpx.post(f"{server}/resonate/schedules", json=body).status_code == 201
    try:
        page.goto(f"{server}/resonate/ui")
        panel = page.locator("#schedules-panel")
        expect(panel).to_be_visible()
        entry = page.locator("#schedules li", has_text=id)
        expect(entry).to_contain_text("0 0 1 1 *")
        expect(entry).to_contain_text("next")
        entry.locator("a").click()
        expect(page.locator("#schedule-id")).to_have_text(id)
    finally:
        httpx.delete(f"{server}/resonate/schedules/{id}")


def test_list_and_detail_side_by_side_at_1280(server: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        id = "ui-a-rather-long-invocation-id-that-names-an-order-" + uuid.uuid4().hex
        book_trip(server, id, "rome")
        page.goto(f"{server}/resonate/ui#/invocations/{id}")
        expect(page.locator("#detail-id")).to_have_text(id)
        expect(row(page, id)).to_be_visible()
        listing = page.locator("#list-panel").bounding_box()
        detail = page.locator("#detail-panel").bounding_box()
        # Side by side: the detail to the right of the list, both from the top.
        assert detail["x"] >= listing["x"] + listing["width"] - 1
        assert abs(detail["y"] - listing["y"]) < 2
        # They use the window's height.
        assert listing["y"] + listing["height"] > 0.9 * 900
        # The id is shown whole, in the list and in the detail (wrapped, never cut).
        for shown in (row(page, id).locator(".id"), page.locator("#detail-id")):
            expect(shown).to_have_text(id)
            assert shown.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
        shot(page, "wide")
    finally:
        context.close()


def test_a_phone_sized_screen(server: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(f"{server}/resonate/ui")
        expect(page.locator("#live")).to_have_text("live")
        expect(page.locator("#start-function option").first).to_be_attached()
        # One column: the list sits below the form, at the form's width.
        form = page.locator("#functions-panel").bounding_box()
        listing = page.locator("#list-panel").bounding_box()
        assert listing["y"] > form["y"] + form["height"] - 1
        assert abs(listing["width"] - form["width"]) < 2
        # An invocation opens below, with its timeline within the screen's width.
        id = "ui-phone-" + uuid.uuid4().hex[:8]
        book_trip(server, id, "oslo")
        page.goto(f"{server}/resonate/ui#/invocations/{id}")
        expect(page.locator("#tree .step-row")).to_have_count(4)
        detail = page.locator("#detail-panel").bounding_box()
        assert detail["y"] > listing["y"] and abs(detail["width"] - form["width"]) < 2
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.locator("#tree .step-row summary").nth(1).click()
        expect(page.locator("#tree .step-row pre.result").first).to_contain_text("flight:oslo")
        page.locator("#detail-panel h3", has_text="Timeline").scroll_into_view_if_needed()
        shot(page, "phone")
    finally:
        context.close()


def test_with_a_token(page: Any) -> None:
    env = {"RESONATE_UI": "1", "RESONATE_AUTH_TOKEN": "s3cret-token"}
    with procs.uvicorn(APP, env=env) as base:
        assert httpx.get(f"{base}/resonate/functions").status_code == 401
        page.goto(f"{base}/resonate/ui")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.fill("#token-input", "wrong")
        page.click("#token-save")
        expect(page.locator("#token-why")).to_contain_text("refused")
        page.fill("#token-input", "s3cret-token")
        page.click("#token-save")
        expect(dialog).to_be_hidden()
        expect(page.locator("#live")).to_have_text("live")
        id = "ui-add-" + uuid.uuid4().hex[:8]
        start_from_form(page, "add", '{"args": [2, 3]}', id)
        expect(page.locator("#detail-facts .badge")).to_have_text("resolved")
        expect(page.locator("#detail-result-value")).to_have_text("5")
        assert page.evaluate("sessionStorage.getItem('resonate-web-token')") == "s3cret-token"
        # A reload keeps the token (this tab's sessionStorage): no dialog.
        page.reload()
        expect(page.locator("#live")).to_have_text("live")
        expect(dialog).to_be_hidden()
        page.close()  # its streams end now, so the server stops without waiting for them


@pytest.mark.parametrize("kind", ["flask-gunicorn", "django-uvicorn"])
def test_the_other_adapters_serve_a_working_page(kind: str, page: Any) -> None:
    from tests.support import servers

    # A short keep-alive: a sync server's thread notices a closed page at its next write.
    with servers.SERVERS[kind](env={"RESONATE_UI": "1", "RESONATE_KEEPALIVE": "1"}) as base:
        page.goto(f"{base}/resonate/ui")
        expect(page.locator("#live")).to_have_text("live")
        id = "ui-" + kind + "-" + uuid.uuid4().hex[:8]
        start_from_form(page, "approval", '{"args": ["go"]}', id)
        awaited = page.locator("#awaiting-list li")
        expect(awaited).to_have_count(1)
        awaited.locator("button.approve").click()
        expect(page.locator("#detail-facts .badge")).to_have_text("resolved")
        expect(row(page, id)).to_have_attribute("data-status", "resolved")
        page.close()  # its streams end now, so the server stops without waiting for them
