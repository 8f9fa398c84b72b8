from django.http import HttpRequest, JsonResponse

import resonate_web.django


def hello(request: HttpRequest, name: str) -> JsonResponse:
    """A view of your own, starting a durable function through the client."""
    handle = resonate_web.django.client().run(f"hello-{name}", "add", len(name), 1)
    return JsonResponse({"id": handle.id, "result": handle.result(timeout=30)})
