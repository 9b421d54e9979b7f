"""config_versions: the applied configuration versions, newest first (the active one marked *)."""
from django.core.management.base import BaseCommand

from configuration.models import ConfigVersion


class Command(BaseCommand):
    help = "List applied pipeline configuration versions."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=30, help="How many versions to show (default 30).")

    def handle(self, *args, limit=30, **options):
        versions = list(ConfigVersion.objects.select_related("applied_by").order_by("-number")[:limit])
        if not versions:
            self.stdout.write("No configuration applied yet (run reload_config).")
            return
        for v in versions:
            who = v.applied_by.get_username() if v.applied_by else "system"
            mark = "*" if v.is_active else " "
            self.stdout.write(f"{mark} v{v.number:<4} {v.sha256[:12]}  {v.applied_at:%Y-%m-%d %H:%M:%S %Z}  "
                              f"{who:<12} {len(v.files):>3} files  {v.comment}")
