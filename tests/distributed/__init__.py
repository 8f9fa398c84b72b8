"""Gateways, workers and the dev server as separate processes, on each shared backend."""
