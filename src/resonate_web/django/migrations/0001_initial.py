"""The outbox table (``PendingStart``)."""

from typing import Any, ClassVar

from django.db import migrations, models  # type: ignore[import-untyped]


class Migration(migrations.Migration):  # type: ignore[misc]
    initial = True

    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations: ClassVar[list[Any]] = [
        migrations.CreateModel(
            name="PendingStart",
            fields=[
                ("id", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("function", models.CharField(max_length=128)),
                ("internal", models.BooleanField(default=False)),
                ("target", models.CharField(blank=True, default="", max_length=255)),
                ("args", models.JSONField(default=list)),
                ("kwargs", models.JSONField(default=dict)),
                ("tags", models.JSONField(default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("last_error", models.TextField(blank=True, default="")),
            ],
            options={
                "db_table": "resonate_web_pending_start",
                "ordering": ("created_at",),
                "permissions": (
                    ("view_invocations", "Can view Resonate invocations"),
                    ("manage_invocations", "Can start, cancel and settle Resonate invocations"),
                ),
            },
        ),
    ]
