"""``path("resonate/", include("resonate_web.django.urls"))``: the contract's routes.

URL names are the core's route names in the ``resonate`` namespace:
``resonate:list_functions``, ``resonate:start``, ``resonate:status``,
``resonate:events``, ``resonate:health``.
"""

from resonate_web.django.views import patterns

app_name = "resonate"

urlpatterns = patterns()
