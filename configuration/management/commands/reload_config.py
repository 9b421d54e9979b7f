"""reload_config [--dir D] [--comment C]: validate the tree and apply it as a new version (all or nothing)."""
from django.core.management.base import BaseCommand, CommandError

from configuration.commands import command_actor
from configuration.services import ConfigInvalid, config_reload


class Command(BaseCommand):
    help = "Validate the pipeline configuration and apply it as a new version; prints the version or every error."

    def add_arguments(self, parser):
        parser.add_argument("--dir", dest="config_dir", help="Configuration tree (default: PIPELINE_CONFIG_DIR).")
        parser.add_argument("--comment", default="", help="Why (kept with the version and in the audit log).")

    def handle(self, *args, config_dir=None, comment="", **options):
        try:
            version = config_reload(actor=command_actor(), config_dir=config_dir, comment=comment)
        except ConfigInvalid as exc:
            for error in exc.errors:
                self.stderr.write(f"{error['file']}: {error['field'] or '(document)'}: {error['reason']}")
            raise CommandError(exc.message, returncode=1) from exc
        if version.changed:
            self.stdout.write(f"Applied configuration v{version.number} sha256 {version.sha256}")
        else:
            self.stdout.write(f"Unchanged: configuration v{version.number} sha256 {version.sha256} is already active")
        self.stdout.write(", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in version.counts.items()))
