"""The resonate routes under another mount (links in responses follow it)."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("api/v1/durable/", include("resonate_web.django.urls"))]
