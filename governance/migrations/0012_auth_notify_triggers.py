"""Triggers that notify channel `governance_auth` with every statement writing a table the API's token query reads
(governance.authentication: the workers keep the rows of the tokens they have read until such a notification
arrives, and keep nothing on a database where any of them is missing or not enabled ALWAYS). PostgreSQL only;
SQLite keeps nothing and needs none."""

from django.db import migrations

CHANNEL = "governance_auth"
TABLES = (
    "authtoken_token",
    "governance_user",
    "governance_position",
    "governance_unit",
    "governance_resident",
    "governance_household",
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE OR REPLACE FUNCTION governance_auth_changed() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    )
    for table in TABLES:
        schema_editor.execute(
            f'CREATE TRIGGER governance_auth_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "{table}" '
            "FOR EACH STATEMENT EXECUTE FUNCTION governance_auth_changed()"
        )
        # ALWAYS: it fires for writes under `session_replication_role = replica` too (a replica's, a bulk fix's).
        schema_editor.execute(f'ALTER TABLE "{table}" ENABLE ALWAYS TRIGGER governance_auth_changed')


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f'DROP TRIGGER IF EXISTS governance_auth_changed ON "{table}"')
    schema_editor.execute("DROP FUNCTION IF EXISTS governance_auth_changed()")


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0011_resident_current_in_household"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
