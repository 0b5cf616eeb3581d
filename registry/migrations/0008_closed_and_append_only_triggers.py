"""The database itself refuses what nobody may do (SPEC 3.2, 3.7): changing the ingredients
of a closed version, deleting it or its artifacts, lowering it in compliance mode, and any
UPDATE or DELETE of an activity event. The domain refuses all of these first, with its own
errors; the triggers hold against what goes around it (a base manager, a plain QuerySet,
loaddata, raw SQL).

A refusal raises an integrity error (SQLite's RAISE(ABORT), PostgreSQL's restrict_violation)
whose message starts with "refused by rule <name>:".

What the triggers let through, on purpose:
- free metadata, the stage, the label while unset, `updated_at`, and `created_by` (set to
  NULL when a user is deleted) of a closed version; lowering one outside compliance mode;
- artifacts and parent links inserted while a closed version is born: version_create
  inserts them after the version row and before its `version.created` event, so an insert
  is refused only once that event exists;
- PostgreSQL's TRUNCATE (no row trigger fires; Django's test flush uses it), and whoever
  owns the tables (they may drop or disable triggers): `manage.py verify_activity --state`
  and the chain head kept elsewhere are what show those.

The SQL is written out here rather than imported, so that this migration keeps meaning what
it meant when later ones change the triggers.
"""

from django.db import migrations

INGREDIENT_COLUMNS = (
    "framework",
    "flavor",
    "environment",
    "datasets",
    "code_version",
    "params",
    "metrics",
    "input_schema",
    "output_schema",
    "experiment_id",
    "source_run",
)
# What never changes on a closed version: its ingredients, the digest made from them, and
# which version it is.
FROZEN_COLUMNS = (*INGREDIENT_COLUMNS, "digest", "model_id", "number", "branch_id")

RULES = {
    "closed_version_ingredients": (
        "the ingredients, digest, model, number and branch of a closed version never change; "
        "register a new version (SPEC 3.2)"
    ),
    "closed_version_deleted": "a closed version is never deleted (SPEC 3.2)",
    "closed_version_artifacts": (
        "the artifacts of a closed version are never added, changed or removed (SPEC 3.2)"
    ),
    "closed_version_parents": "the parents of a closed version never change (SPEC 3.2)",
    "closed_is_final": (
        "in compliance mode a closed version is never lowered, by anyone (SPEC 3.2)"
    ),
    "compliance_mode_kept": "compliance mode is never turned off once on (SPEC 3.2)",
    "blob_content_addressed": (
        "a blob is content-addressed: its hash and size never change (SPEC 3.5)"
    ),
    "activity_append_only": (
        "activity events are append-only: never updated or deleted (SPEC 3.7)"
    ),
}


def refusal(rule: str) -> str:
    """The message as an SQL string literal."""
    return "'" + f"refused by rule {rule}: {RULES[rule]}".replace("'", "''") + "'"


def row(prefix: str, columns: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"{prefix}.{column}" for column in columns) + ")"


CLOSED = "SELECT 1 FROM registry_modelversion WHERE id = {v} AND lock_level = 'closed'"
# A closed version whose registration is recorded: no longer being born.
REGISTERED = (
    "SELECT 1 FROM registry_activityevent WHERE version_id = {v} AND verb = 'version.created'"
)


def sqlite_trigger(name: str, when: str, table: str, condition: str, rule: str) -> str:
    return (
        f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW WHEN {condition} "
        f"BEGIN SELECT RAISE(ABORT, {refusal(rule)}); END"
    )


def closed(version: str) -> str:
    return f"EXISTS ({CLOSED.format(v=version)})"


def closed_and_registered(version: str) -> str:
    return f"{closed(version)} AND EXISTS ({REGISTERED.format(v=version)})"


SQLITE_TRIGGERS = {
    "registry_modelversion_closed_ingredients": (
        "BEFORE UPDATE",
        "registry_modelversion",
        f"OLD.lock_level = 'closed' AND {row('NEW', FROZEN_COLUMNS)} IS NOT "
        f"{row('OLD', FROZEN_COLUMNS)}",
        "closed_version_ingredients",
    ),
    "registry_modelversion_closed_is_final": (
        "BEFORE UPDATE",
        "registry_modelversion",
        "OLD.lock_level = 'closed' AND NEW.lock_level IS NOT 'closed' AND EXISTS ("
        "SELECT 1 FROM registry_registeredmodel m JOIN registry_organization o "
        "ON o.id = m.org_id WHERE m.id = OLD.model_id AND o.closed_is_final)",
        "closed_is_final",
    ),
    "registry_modelversion_closed_delete": (
        "BEFORE DELETE",
        "registry_modelversion",
        "OLD.lock_level = 'closed'",
        "closed_version_deleted",
    ),
    "registry_artifact_closed_insert": (
        "BEFORE INSERT",
        "registry_artifact",
        closed_and_registered("NEW.version_id"),
        "closed_version_artifacts",
    ),
    "registry_artifact_closed_update": (
        "BEFORE UPDATE",
        "registry_artifact",
        "(NEW.version_id, NEW.path, NEW.blob_id) IS NOT (OLD.version_id, OLD.path, OLD.blob_id)"
        f" AND ({closed('OLD.version_id')} OR {closed('NEW.version_id')})",
        "closed_version_artifacts",
    ),
    "registry_artifact_closed_delete": (
        "BEFORE DELETE",
        "registry_artifact",
        closed("OLD.version_id"),
        "closed_version_artifacts",
    ),
    "registry_versionparent_closed_insert": (
        "BEFORE INSERT",
        "registry_versionparent",
        closed_and_registered("NEW.child_id"),
        "closed_version_parents",
    ),
    "registry_versionparent_closed_update": (
        "BEFORE UPDATE",
        "registry_versionparent",
        "(NEW.child_id, NEW.parent_id) IS NOT (OLD.child_id, OLD.parent_id)"
        f" AND ({closed('OLD.child_id')} OR {closed('NEW.child_id')})",
        "closed_version_parents",
    ),
    "registry_versionparent_closed_delete": (
        "BEFORE DELETE",
        "registry_versionparent",
        closed("OLD.child_id"),
        "closed_version_parents",
    ),
    "registry_organization_compliance_kept": (
        "BEFORE UPDATE",
        "registry_organization",
        "OLD.closed_is_final AND NOT NEW.closed_is_final",
        "compliance_mode_kept",
    ),
    "registry_blob_content_addressed": (
        "BEFORE UPDATE",
        "registry_blob",
        "(NEW.sha256, NEW.size) IS NOT (OLD.sha256, OLD.size)",
        "blob_content_addressed",
    ),
    "registry_activityevent_no_update": (
        "BEFORE UPDATE",
        "registry_activityevent",
        "1",
        "activity_append_only",
    ),
    "registry_activityevent_no_delete": (
        "BEFORE DELETE",
        "registry_activityevent",
        "1",
        "activity_append_only",
    ),
}


def plpgsql(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n{body}\nEND\n$$"
    )


def pg_raise(rule: str) -> str:
    return f"RAISE EXCEPTION USING MESSAGE = {refusal(rule)}, ERRCODE = 'restrict_violation';"


# Rows of other tables are read in functions: a PostgreSQL trigger's WHEN cannot hold a
# subquery. The conditions are SQLite's, in PL/pgSQL.
PG_FUNCTIONS = {
    # Refuses with the message it is given: for the triggers whose WHEN says it all.
    "registry_refuse": (
        "RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'restrict_violation';"
    ),
    "registry_modelversion_closed_is_final": f"""
IF EXISTS (SELECT 1 FROM registry_registeredmodel m JOIN registry_organization o
           ON o.id = m.org_id WHERE m.id = OLD.model_id AND o.closed_is_final) THEN
    {pg_raise("closed_is_final")}
END IF;
RETURN NEW;""",
    "registry_artifact_closed": f"""
IF TG_OP = 'INSERT' THEN
    IF {closed_and_registered("NEW.version_id")} THEN
        {pg_raise("closed_version_artifacts")}
    END IF;
    RETURN NEW;
END IF;
IF TG_OP = 'UPDATE' THEN
    IF (NEW.version_id, NEW.path, NEW.blob_id) IS DISTINCT FROM
           (OLD.version_id, OLD.path, OLD.blob_id)
       AND ({closed("OLD.version_id")} OR {closed("NEW.version_id")}) THEN
        {pg_raise("closed_version_artifacts")}
    END IF;
    RETURN NEW;
END IF;
IF {closed("OLD.version_id")} THEN
    {pg_raise("closed_version_artifacts")}
END IF;
RETURN OLD;""",
    "registry_versionparent_closed": f"""
IF TG_OP = 'INSERT' THEN
    IF {closed_and_registered("NEW.child_id")} THEN
        {pg_raise("closed_version_parents")}
    END IF;
    RETURN NEW;
END IF;
IF TG_OP = 'UPDATE' THEN
    IF (NEW.child_id, NEW.parent_id) IS DISTINCT FROM (OLD.child_id, OLD.parent_id)
       AND ({closed("OLD.child_id")} OR {closed("NEW.child_id")}) THEN
        {pg_raise("closed_version_parents")}
    END IF;
    RETURN NEW;
END IF;
IF {closed("OLD.child_id")} THEN
    {pg_raise("closed_version_parents")}
END IF;
RETURN OLD;""",
}


def pg_refuse(rule: str) -> str:
    return f"registry_refuse({refusal(rule)})"


# name -> (timing and events, table, WHEN or None, function call)
PG_TRIGGERS = {
    "registry_modelversion_closed_ingredients": (
        "BEFORE UPDATE",
        "registry_modelversion",
        f"OLD.lock_level = 'closed' AND {row('NEW', FROZEN_COLUMNS)} IS DISTINCT FROM "
        f"{row('OLD', FROZEN_COLUMNS)}",
        pg_refuse("closed_version_ingredients"),
    ),
    "registry_modelversion_closed_is_final": (
        "BEFORE UPDATE",
        "registry_modelversion",
        "OLD.lock_level = 'closed' AND NEW.lock_level IS DISTINCT FROM 'closed'",
        "registry_modelversion_closed_is_final()",
    ),
    "registry_modelversion_closed_delete": (
        "BEFORE DELETE",
        "registry_modelversion",
        "OLD.lock_level = 'closed'",
        pg_refuse("closed_version_deleted"),
    ),
    "registry_artifact_closed": (
        "BEFORE INSERT OR UPDATE OR DELETE",
        "registry_artifact",
        None,
        "registry_artifact_closed()",
    ),
    "registry_versionparent_closed": (
        "BEFORE INSERT OR UPDATE OR DELETE",
        "registry_versionparent",
        None,
        "registry_versionparent_closed()",
    ),
    "registry_organization_compliance_kept": (
        "BEFORE UPDATE",
        "registry_organization",
        "OLD.closed_is_final AND NOT NEW.closed_is_final",
        pg_refuse("compliance_mode_kept"),
    ),
    "registry_blob_content_addressed": (
        "BEFORE UPDATE",
        "registry_blob",
        "(NEW.sha256, NEW.size) IS DISTINCT FROM (OLD.sha256, OLD.size)",
        pg_refuse("blob_content_addressed"),
    ),
    "registry_activityevent_append_only": (
        "BEFORE UPDATE OR DELETE",
        "registry_activityevent",
        None,
        pg_refuse("activity_append_only"),
    ),
}


def create_statements(vendor: str) -> list[str]:
    if vendor == "sqlite":
        return [sqlite_trigger(name, *spec) for name, spec in SQLITE_TRIGGERS.items()]
    if vendor == "postgresql":
        functions = [plpgsql(name, body) for name, body in PG_FUNCTIONS.items()]
        triggers = [
            f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW "
            + (f"WHEN ({condition}) " if condition else "")
            + f"EXECUTE FUNCTION {call}"
            for name, (when, table, condition, call) in PG_TRIGGERS.items()
        ]
        return functions + triggers
    return []


def drop_statements(vendor: str) -> list[str]:
    if vendor == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS]
    if vendor == "postgresql":
        triggers = [
            f"DROP TRIGGER IF EXISTS {name} ON {table}"
            for name, (_, table, _, _) in PG_TRIGGERS.items()
        ]
        return triggers + [f"DROP FUNCTION IF EXISTS {name}()" for name in PG_FUNCTIONS]
    return []


def create_triggers(apps, schema_editor):
    for statement in create_statements(schema_editor.connection.vendor):
        # params=None: the SQL holds no placeholders, and PL/pgSQL's % must stay as it is.
        schema_editor.execute(statement, params=None)


def drop_triggers(apps, schema_editor):
    for statement in drop_statements(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("registry", "0007_tags_gin_no_pending_list")]

    operations = [migrations.RunPython(create_triggers, drop_triggers, elidable=False)]
