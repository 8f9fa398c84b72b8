"""The FastAPI adapter."""
