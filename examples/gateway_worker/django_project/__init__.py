"""The Django gateway: the FastAPI example's routes and handler, as a Django project."""
