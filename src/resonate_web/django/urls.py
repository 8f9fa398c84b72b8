"""``path("resonate/", include("resonate_web.django.urls"))``: the contract's routes.

URL names are the core's route names in the ``resonate`` namespace:
``resonate:list_functions``, ``resonate:start``, ``resonate:status``,
``resonate:events``, ``resonate:health``, ``resonate:list_schedules``,
``resonate:create_schedule``, ``resonate:get_schedule``, ``resonate:delete_schedule``
(routes that share a path reverse to it alike).
"""

from resonate_web.django.views import patterns

app_name = "resonate"

urlpatterns = patterns()
