"""The durable side: no HTTP, no framework.

The SDK seam (:mod:`.sdk`), promise search (:mod:`.search`), cron maths
(:mod:`.cron`), exposing functions (:mod:`.exposure`), the runtime and its portal
(:mod:`.runtime`), schedules (:mod:`.schedules`), invocations read as data
(:mod:`.invocations`), ids and bodies (:mod:`.parsing`), when a process starts
its runtime (:mod:`.startup`) and the Postgres check (:mod:`.pgcheck`). Nothing
here imports the HTTP layer (:mod:`resonate_web._gateway`) or an adapter.
"""
