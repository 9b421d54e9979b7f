"""rollback_config N --reason R: re-apply the files of version N as a new version."""
from django.core.management.base import BaseCommand, CommandError

from configuration.commands import command_actor
from configuration.services import ConfigInvalid, config_rollback
from opsconsole.errors import ApplicationError


class Command(BaseCommand):
    help = "Roll the pipeline configuration back to an earlier version (applied as a new version)."

    def add_arguments(self, parser):
        parser.add_argument("number", type=int, help="The version to go back to.")
        parser.add_argument("--reason", required=True, help="Why (kept in the audit log).")

    def handle(self, *args, number: int, reason: str, **options):
        try:
            version = config_rollback(actor=command_actor(), number=number, reason=reason)
        except ConfigInvalid as exc:
            for error in exc.errors:
                self.stderr.write(f"{error['file']}: {error['field'] or '(document)'}: {error['reason']}")
            raise CommandError(exc.message, returncode=1) from exc
        except ApplicationError as exc:
            raise CommandError(exc.message, returncode=1) from exc
        if version.changed:
            self.stdout.write(f"Rolled back to v{number}: applied as v{version.number} sha256 {version.sha256}")
        else:
            self.stdout.write(f"Unchanged: v{version.number} already has the files of v{number}")
