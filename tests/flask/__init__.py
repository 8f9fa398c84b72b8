"""The Flask adapter."""
