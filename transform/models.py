"""Transformation rules and quality scoring as applied from beta/*.yaml."""
from django.db import models


class TransformRule(models.Model):
    rule_id = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(default=1000, help_text="Lower runs first.")
    spec = models.JSONField(help_text="The rule's YAML, as applied.")
    config_version = models.PositiveIntegerField()

    class Meta:
        ordering = ["priority", "rule_id"]

    def __str__(self) -> str:
        return self.rule_id


class QualityProfile(models.Model):
    """beta/quality/scoring.yaml as applied (one row)."""

    name = models.CharField(max_length=50, unique=True, default="default")
    spec = models.JSONField()
    config_version = models.PositiveIntegerField()
