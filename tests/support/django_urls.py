from __future__ import annotations

from django.urls import include, path

from tests.support.django_views import place_order

urlpatterns = [
    path("resonate/", include("resonate_web.django.urls")),
    path("orders/<str:key>", place_order),
]
