"""Reads about Module Beta: transformation rules and quality scoring as applied."""
from .models import QualityProfile, TransformRule


def transform_rule_list():
    """Transformation rules in the order they run (priority, then id)."""
    return TransformRule.objects.order_by("priority", "rule_id")


def quality_profile_get() -> QualityProfile | None:
    return QualityProfile.objects.filter(name="default").first()
