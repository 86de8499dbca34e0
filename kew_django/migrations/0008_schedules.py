import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kew_django", "0007_crash_counts"),
    ]

    operations = [
        migrations.CreateModel(
            name="PeriodicJob",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, unique=True)),
                ("done_until", models.DateTimeField()),
                (
                    "last_tick",
                    models.DateTimeField(blank=True, help_text="The last tick fired.", null=True),
                ),
                (
                    "last_fired_at",
                    models.DateTimeField(blank=True, help_text="Database time.", null=True),
                ),
                (
                    "fired",
                    models.PositiveBigIntegerField(default=0, help_text="Ticks fired so far."),
                ),
                ("paused", models.BooleanField(default=False)),
                (
                    "created_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now()
                    ),
                ),
            ],
            options={
                "verbose_name": "periodic job",
                "permissions": [("pause_periodicjob", "Can pause and resume periodic jobs")],
            },
        ),
    ]
