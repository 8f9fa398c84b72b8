from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from tests.support.django_views import enqueue_task, place_order, runtime_loop, task_result

urlpatterns = [
    path("admin/", admin.site.urls),
    path("resonate/", include("resonate_web.django.urls")),
    path("orders/<str:key>", place_order),
    path("tasks/<str:name>", enqueue_task),
    path("task-results/<str:id>", task_result),
    path("runtime-loop", runtime_loop),
]
