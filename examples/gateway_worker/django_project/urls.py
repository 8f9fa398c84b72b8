from django.urls import include, path
from django_project import views

urlpatterns = [
    path("resonate/", include("resonate_web.django.urls")),
    path("hello/<str:name>", views.hello),
]
