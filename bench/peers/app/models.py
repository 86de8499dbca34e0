"""The one table every system's handler inserts into."""

from django.db import models


class Effect(models.Model):
    """One handled message: which system, its number, when its handler started (epoch s)."""

    system = models.CharField(max_length=32)
    n = models.IntegerField()
    started = models.FloatField()


class Order(models.Model):
    """The business row a web request writes beside its message (the ``web`` workload)."""

    system = models.CharField(max_length=32)
    n = models.IntegerField()
