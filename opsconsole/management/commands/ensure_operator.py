"""Create (or repair) a login for an operator or a service account, idempotently.

`make run` calls it for the demo login `operator`: the password is kept in a file so every re-run
prints the same one; the DRF token comes from `manage.py drf_create_token`.
"""
import json
import os
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from opsconsole.audit import audit_record
from opsconsole.roles import ALL_GROUPS


def _password_from_file(path: Path) -> str:
    """The stored password, or a new random one written (0600) before it is used."""
    if path.exists():
        stored = path.read_text().strip()
        if stored:
            return stored
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


class Command(BaseCommand):
    help = "Create or repair a user in the given groups; prints JSON {username, password, created}."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="operator")
        parser.add_argument("--group", action="append", dest="groups", help="Group to join (repeatable).")
        parser.add_argument("--password-file", help="Keep the password here; created with a random one if missing.")

    def handle(self, *args, username: str, groups: list[str] | None, password_file: str | None, **options):
        groups = groups or ["Operations Team"]
        unknown = [g for g in groups if g not in ALL_GROUPS]
        if unknown:
            raise CommandError(f"unknown group(s): {', '.join(unknown)} (known: {', '.join(ALL_GROUPS)})")
        password = _password_from_file(Path(password_file)) if password_file else secrets.token_urlsafe(12)
        User = get_user_model()
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username)
            changed = created or not user.check_password(password) or not user.is_active
            if changed:
                user.set_password(password)
                user.is_active = True
                user.save()
            joined = []
            for name in groups:
                group, _ = Group.objects.get_or_create(name=name)
                if not user.groups.filter(pk=group.pk).exists():
                    user.groups.add(group)
                    joined.append(name)
            if changed or joined:
                audit_record(
                    actor=None, action="user.login_ensure", target=f"user:{username}",
                    reason="set-up (make run / bench)",
                    details={"created": created, "password_set": changed, "groups_joined": joined},
                )
        self.stdout.write(json.dumps({"username": username, "password": password, "created": created}))
