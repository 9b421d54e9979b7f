"""Durable counters behind the pipeline's *_total metrics.

They are written in the same transaction as the records they count, by whichever worker did the
work, so /metrics on any web process reports exact, restart-proof totals.
"""
from django.db import models


class MetricCounter(models.Model):
    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=300, help_text='Label pairs as k=v joined by "," in sorted order.')
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="one_counter_per_name_labels")]
