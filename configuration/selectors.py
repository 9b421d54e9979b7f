"""Reads about applied pipeline configuration versions."""
from .models import ConfigVersion


def config_version_list():
    """Applied configuration versions, newest first, with who applied them."""
    return ConfigVersion.objects.select_related("applied_by").order_by("-number")
