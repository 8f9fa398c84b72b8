"""A URLconf where another pattern shadows the resonate routes (for the system check)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def catch_all(request: HttpRequest, rest: str) -> HttpResponse:
    return HttpResponse("mine")


urlpatterns = [
    path("resonate/<path:rest>", catch_all, name="catch_all"),
    path("resonate/", include("resonate_web.django.urls")),
]
