"""A "Resonate" section in Django's admin, behind the admin's login and permissions.

- **Invocations**: the list of invocations (filters ``function`` and ``status``,
  as ``GET /invocations``), an invocation's page with its status document and
  its tree of steps, and the actions the routes define: cancel a pending
  invocation, rerun a settled one (a new invocation of the same call, as
  ``POST /invocations/{id}/rerun``), resolve a promise it awaits; cancel or rerun
  the ones selected in the list. Who may see it: staff with
  ``resonate_web.view_invocations`` (or ``manage_invocations``), and
  superusers; acting needs ``manage_invocations`` (or a superuser).
- **Pending starts**: the outbox (:mod:`resonate_web.django.outbox`), with the
  attempts and the last error of each start not yet sent, and an action that
  sends the selected ones now.

Every page goes through the same gateway code as the routes (and through the
``AUTHORIZE`` hook, if one is set), with the admin user as ``request.user``.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages  # type: ignore[import-untyped]
from django.core.exceptions import PermissionDenied  # type: ignore[import-untyped]
from django.http import (  # type: ignore[import-untyped]
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse  # type: ignore[import-untyped]
from django.urls import path, reverse  # type: ignore[import-untyped]
from django.views.decorators.http import require_POST  # type: ignore[import-untyped]

from resonate_web._gateway.contract import Request, Response
from resonate_web.django import conf, outbox
from resonate_web.django.auth import MANAGE_PERMISSION, VIEW_PERMISSION
from resonate_web.django.models import Invocation, PendingStart


def _can_view(request: HttpRequest) -> bool:
    user = request.user
    return bool(
        user.is_active
        and user.is_staff
        and (user.has_perm(VIEW_PERMISSION) or user.has_perm(MANAGE_PERMISSION))
    )


def _can_manage(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(MANAGE_PERMISSION))


def _route(
    request: HttpRequest,
    route: str,
    *,
    method: str = "GET",
    path_params: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
) -> Response:
    """Run route ``route`` of the gateway for the admin user, as the routes would."""
    st = conf.state()
    neutral = Request(
        method=method,
        path_params=path_params or {},
        query=query or {},
        headers={"content-type": "application/json"},
        body=b"" if body is None else json.dumps(body).encode(),
        prefix=reverse("resonate:list_functions").removesuffix("/functions")
        if _has_routes()
        else "",
        user=request.user,
    )
    return st.portal.call(st.gateway.handle(route, neutral, request.path))


def _has_routes() -> bool:
    from django.urls import NoReverseMatch

    try:
        reverse("resonate:list_functions")
    except NoReverseMatch:
        return False
    return True


def _problem(request: HttpRequest, response: Response) -> bool:
    """Report a problem answer as an admin message; whether there was one."""
    if response.status < 400:
        return False
    body = response.body if isinstance(response.body, dict) else {}
    messages.error(request, f"{body.get('title', 'Error')}: {body.get('detail', '')}")
    return True


#: The list's actions on the selected invocations: the route each runs, and what it did.
SELECTED_ACTIONS = {"cancel": "canceled", "rerun": "rerun"}


@admin.register(Invocation)
class InvocationAdmin(admin.ModelAdmin):  # type: ignore[misc]
    def has_module_permission(self, request: HttpRequest) -> bool:
        return _can_view(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _can_view(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("", view(self.list_view), name="resonate_web_invocation_changelist"),
            path("<str:id>/", view(self.detail_view), name="resonate_web_invocation_change"),
            path(
                "<str:id>/cancel/",
                view(require_POST(self.cancel_view)),
                name="resonate_web_invocation_cancel",
            ),
            path(
                "<str:id>/rerun/",
                view(require_POST(self.rerun_view)),
                name="resonate_web_invocation_rerun",
            ),
            path(
                "<str:id>/resolve/",
                view(require_POST(self.resolve_view)),
                name="resonate_web_invocation_resolve",
            ),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "can_manage": _can_manage(request),
            **extra,
        }

    def list_view(self, request: HttpRequest) -> HttpResponse:
        if not _can_view(request):
            raise PermissionDenied
        if request.method == "POST":
            return self.act_on_selected_view(request)
        keys = ("function", "status", "schedule", "cursor")
        query = {k: v for k in keys if (v := request.GET.get(k))}
        response = _route(request, "list", query=query)
        listed = [] if _problem(request, response) else response.body["invocations"]
        functions = sorted(conf.state().runtime.listed)
        context = self._context(
            request,
            "Invocations",
            invocations=listed,
            next=None if response.status >= 400 else response.body.get("next"),
            functions=functions,
            statuses=["pending", "resolved", "rejected", "canceled", "timedout"],
            chosen=query,
        )
        return TemplateResponse(request, "admin/resonate_web/invocation_list.html", context)

    def detail_view(self, request: HttpRequest, id: str) -> HttpResponse:
        if not _can_view(request):
            raise PermissionDenied
        doc = _route(request, "status", path_params={"id": id})
        if _problem(request, doc):
            return HttpResponseRedirect(reverse("admin:resonate_web_invocation_changelist"))
        tree = _route(request, "tree", path_params={"id": id})
        context = self._context(
            request,
            f"Invocation {id}",
            id=id,
            doc=doc.body,
            # The rerun route starts exposed functions only (not django.tasks tasks).
            can_rerun=doc.body["status"] != "pending"
            and doc.body["function"] in conf.state().runtime.exposed,
            document=json.dumps(doc.body, indent=2),
            tree=None if tree.status >= 400 else tree.body,
        )
        return TemplateResponse(request, "admin/resonate_web/invocation_detail.html", context)

    def _back(self, id: str) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:resonate_web_invocation_change", args=[id]))

    def cancel_view(self, request: HttpRequest, id: str) -> HttpResponse:
        if not _can_manage(request):
            raise PermissionDenied
        response = _route(request, "cancel", method="POST", path_params={"id": id})
        if not _problem(request, response):
            messages.success(request, f"Invocation {id} is {response.body['status']}.")
        return self._back(id)

    def rerun_view(self, request: HttpRequest, id: str) -> HttpResponse:
        """Rerun the invocation (``POST /invocations/{id}/rerun``) and show the new one."""
        if not _can_manage(request):
            raise PermissionDenied
        response = _route(request, "rerun", method="POST", path_params={"id": id})
        if _problem(request, response):
            return self._back(id)
        new = response.body["id"]
        messages.success(request, f"Invocation {id} is rerun as {new}.")
        return self._back(new)

    def act_on_selected_view(self, request: HttpRequest) -> HttpResponse:
        """Cancel or rerun (``action``; cancel when absent) the invocations checked in
        the list (a POST to the list), one route call each, as the invocation's own
        page would: those the route refuses are said, with the route's reason."""
        if not _can_manage(request):
            raise PermissionDenied
        action = request.POST.get("action") or "cancel"
        if action not in SELECTED_ACTIONS:
            messages.error(request, f"Unknown action {action[:40]!r}.")
            return HttpResponseRedirect(reverse("admin:resonate_web_invocation_changelist"))
        ids = request.POST.getlist("ids")
        done = 0
        for id in ids:
            response = _route(request, action, method="POST", path_params={"id": id})
            if not _problem(request, response):
                done += 1
        messages.info(request, f"{done} of {len(ids)} invocation(s) {SELECTED_ACTIONS[action]}.")
        return HttpResponseRedirect(reverse("admin:resonate_web_invocation_changelist"))

    def resolve_view(self, request: HttpRequest, id: str) -> HttpResponse:
        if not _can_manage(request):
            raise PermissionDenied
        promise = request.POST.get("promise", "")
        try:
            value = json.loads(request.POST.get("value") or "null")
        except ValueError as exc:
            messages.error(request, f"The value is not JSON: {exc}")
            return self._back(id)
        response = _route(
            request,
            "resolve",
            method="POST",
            path_params={"id": promise},
            body={"value": value},
        )
        if not _problem(request, response):
            messages.success(request, f"Promise {promise} is resolved.")
        return self._back(id)


@admin.register(PendingStart)
class PendingStartAdmin(admin.ModelAdmin):  # type: ignore[misc]
    list_display = ("id", "function", "target", "attempts", "last_error", "created_at")
    readonly_fields = (
        "id",
        "function",
        "internal",
        "target",
        "args",
        "kwargs",
        "created_at",
        "attempts",
        "last_error",
    )
    actions = ("send_now",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_send_permission(self, request: HttpRequest) -> bool:
        return _can_manage(request)

    @admin.action(  # type: ignore[untyped-decorator]
        description="Send the selected starts now", permissions=["send"]
    )
    def send_now(self, request: HttpRequest, queryset: Any) -> None:
        st = conf.state()
        sent = sum(1 for row in queryset if outbox._send(st, row, queryset.db))
        self.message_user(request, f"{sent} of {len(queryset)} start(s) sent.")
