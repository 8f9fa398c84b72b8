"""The HTTP contract on neutral requests and responses, for every adapter.

Its types (:mod:`.contract`), the routes and the invocation service
(:mod:`.router`), the route groups (:mod:`.browse`, :mod:`.settling`,
:mod:`.dashboard` with its page under ``ui/``) and the OpenAPI document
(:mod:`.openapi`). It builds on :mod:`resonate_web._core`; no framework here.
"""
