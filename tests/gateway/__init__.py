"""The HTTP layer (resonate_web._gateway) and the in-process clients, beyond the
conformance suite."""
