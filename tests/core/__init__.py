"""The durable side (resonate_web._core): the SDK seam, the runtime, schedules,
backends, settings."""
