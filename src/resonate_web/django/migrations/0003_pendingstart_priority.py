"""A pending start's priority (flow control)."""

from typing import Any, ClassVar

from django.db import migrations, models  # type: ignore[import-untyped]


class Migration(migrations.Migration):  # type: ignore[misc]
    dependencies: ClassVar[list[tuple[str, str]]] = [("resonate_web", "0002_invocation")]

    operations: ClassVar[list[Any]] = [
        migrations.AddField(
            model_name="pendingstart",
            name="priority",
            field=models.IntegerField(blank=True, null=True),
        ),
    ]
