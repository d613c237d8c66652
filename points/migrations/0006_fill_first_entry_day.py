from django.db import migrations

FILL = """
    UPDATE points_account SET first_entry_on = (
      SELECT MIN(e.occurred_on) FROM points_entry e WHERE e.account_id = points_account.id)
"""


class Migration(migrations.Migration):
    """Each account's earliest entry day, for the accounts recorded before the field existed."""

    dependencies = [("points", "0005_account_first_entry_day")]
    operations = [migrations.RunSQL(FILL, "UPDATE points_account SET first_entry_on = NULL")]
