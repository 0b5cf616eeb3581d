"""A GIN index on version tags, for tag equality in the query language (`tags.team ==
"risk"` compiles to containment on PostgreSQL). PostgreSQL only: SQLite has no GIN, and
there the query reads the tags of the org's versions."""

from django.db import migrations

INDEX = "registry_modelversion_tags_gin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON registry_modelversion "
            "USING gin (tags jsonb_path_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("registry", "0005_flags")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
