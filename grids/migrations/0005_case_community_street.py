import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """A case's community and street, kept on the case (filled by 0006, required and indexed by 0007: three
    migrations, since PostgreSQL will not alter a table in the transaction that updated its foreign keys)."""

    dependencies = [
        ("governance", "0010_unit_path_to_grids"),
        ("grids", "0004_case_grid_created_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="case",
            name="community",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="governance.unit",
                verbose_name="社区",
            ),
        ),
        migrations.AddField(
            model_name="case",
            name="street",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="governance.unit",
                verbose_name="街道",
            ),
        ),
    ]
