"""One row per handler run that committed: what the tests count."""

from django.db import models


class Effect(models.Model):
    """A handler's effect: no unique constraint, so a second run of one message shows."""

    queue = models.CharField(max_length=100)
    n = models.IntegerField()
    worker = models.CharField(max_length=50)
    handled_at = models.FloatField()  # epoch seconds

    class Meta:
        app_label = "scale"
