from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("resonate/", include("resonate_web.django.urls"))]
