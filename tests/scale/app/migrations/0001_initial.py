from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [
        migrations.CreateModel(
            name="Effect",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("queue", models.CharField(max_length=100)),
                ("n", models.IntegerField()),
                ("worker", models.CharField(max_length=50)),
                ("handled_at", models.FloatField()),
            ],
        ),
    ]
