from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0011_resident_current_in_household"),
        ("mailbox", "0002_default_categories"),
    ]

    # The new index first: the lists keep an index of the newest letters meanwhile.
    operations = [
        migrations.AddIndex(
            model_name="letter",
            index=models.Index(fields=["created_at", "id", "unit", "assignee_unit"], name="letter_created_walk"),
        ),
        migrations.AlterField(
            model_name="letter",
            name="created_at",
            field=models.DateTimeField(verbose_name="来信时间"),
        ),
    ]
