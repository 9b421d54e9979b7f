"""Reads of the audit log."""
from .models import AuditEntry


def audit_entry_list():
    """The audit log, newest first (filter with opsconsole.filtersets.AuditEntryFilterSet)."""
    return AuditEntry.objects.order_by("-at", "-id")
