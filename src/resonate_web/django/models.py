"""The outbox: starts written in the application's own transaction, sent after it commits.

See :mod:`resonate_web.django.outbox`.
"""

from __future__ import annotations

from django.db import models  # type: ignore[import-untyped]


class PendingStart(models.Model):  # type: ignore[misc]
    """One invocation to start once its transaction has committed.

    The id is the invocation's, chosen when the row is written: sending it again
    is a replay on the backend, never a second execution.
    """

    id = models.CharField(primary_key=True, max_length=255)
    #: The exposed function's name, or the internal function's (``internal``).
    function = models.CharField(max_length=128)
    internal = models.BooleanField(default=False)
    #: The worker group it is dispatched to, when not the function's own target.
    target = models.CharField(max_length=255, blank=True, default="")
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    #: The invocation's own tags (``dispatch(tags=...)``).
    tags = models.JSONField(default=dict)
    #: Its place among waiting invocations (``dispatch(priority=...)``, flow control).
    priority = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        app_label = "resonate_web"
        db_table = "resonate_web_pending_start"
        ordering = ("created_at",)
        # Read by the ready AUTHORIZE hook (resonate_web.django.auth); they
        # govern the routes and the dashboard, not this table.
        permissions = (
            ("view_invocations", "Can view Resonate invocations"),
            ("manage_invocations", "Can start, cancel and settle Resonate invocations"),
        )

    def __str__(self) -> str:
        return f"{self.function} {self.id}"


class Invocation(models.Model):  # type: ignore[misc]
    """The admin's "Invocations" entry: no table, the rows are read from the backend
    (see :mod:`resonate_web.django.admin`)."""

    class Meta:
        app_label = "resonate_web"
        managed = False
        default_permissions = ()
        verbose_name = "invocation"
