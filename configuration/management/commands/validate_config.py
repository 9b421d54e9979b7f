"""validate_config PATH...: the manual's alpha-/beta-/gamma-config-validator and beta-rule-validator.

PATH is a whole configuration tree, any folder, or single files of any kind (a source, a rule,
scoring.yaml, a destination, a routing rule, a JSON schema). Prints `file: field: reason` for every
error and exits 1, or prints `OK: N files valid`.
"""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from configuration.loader import load_paths


class Command(BaseCommand):
    help = "Validate pipeline configuration files or trees; prints every error as file: field: reason."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", metavar="PATH",
                            help="Files or folders (default: the whole PIPELINE_CONFIG_DIR tree).")

    def handle(self, *args, paths=(), **options):
        checked, issues = load_paths(paths or [settings.PIPELINE_CONFIG_DIR], default_tree=settings.PIPELINE_CONFIG_DIR)
        for issue in issues:
            self.stdout.write(str(issue))
        if issues:
            raise CommandError(f"{len(issues)} error{'s' if len(issues) != 1 else ''} in the configuration",
                               returncode=1)
        self.stdout.write(f"OK: {checked} files valid")
