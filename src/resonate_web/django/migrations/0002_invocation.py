"""The admin's Invocations entry (no table: read from the backend)."""

from typing import Any, ClassVar

from django.db import migrations, models  # type: ignore[import-untyped]


class Migration(migrations.Migration):  # type: ignore[misc]
    dependencies: ClassVar[list[tuple[str, str]]] = [("resonate_web", "0001_initial")]

    operations: ClassVar[list[Any]] = [
        migrations.CreateModel(
            name="Invocation",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={"verbose_name": "invocation", "managed": False, "default_permissions": ()},
        ),
    ]
