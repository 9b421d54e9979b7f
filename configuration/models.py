"""Applied pipeline configuration versions (DESIGN.md §4)."""
from django.conf import settings
from django.db import models


class ConfigVersion(models.Model):
    """One applied configuration: the files as they were, their hash, who applied them."""

    number = models.PositiveIntegerField(unique=True)
    sha256 = models.CharField(max_length=64)
    files = models.JSONField(help_text="Relative path -> file text, exactly as applied.")
    applied_at = models.DateTimeField(auto_now_add=True)
    applied_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    comment = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=False, db_index=True)

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"v{self.number} ({self.sha256[:12]})"
