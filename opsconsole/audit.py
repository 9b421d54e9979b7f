"""Writing the audit log. Every operator action calls audit_record inside its transaction."""
from typing import Any

from .models import AuditEntry


def audit_record(*, actor, action: str, target: str = "", reason: str = "", details: dict[str, Any] | None = None) -> AuditEntry:
    """Append who did what to the audit log. `actor` is a user, or None for the system."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    name = user.get_username() if user else (actor if isinstance(actor, str) else "system")
    return AuditEntry.objects.create(
        actor=user, actor_name=name, action=action, target=target, reason=reason, details=details or {}
    )
