"""Population.reserved: the uses that live leases hold, apart from the uses that votes spent (arena 0005 recounts)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0005_population_in_use_idx"),
    ]

    operations = [
        migrations.AlterField(
            model_name="population",
            name="uses",
            field=models.PositiveIntegerField(default=0, help_text="Voted comparisons this population was shown in."),
        ),
        migrations.AddField(
            model_name="population",
            name="reserved",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Comparisons showing this population under a live lease: given back when unvoted ones expire.",
            ),
        ),
    ]
