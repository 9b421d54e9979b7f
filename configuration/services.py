"""Configuration as code: validate, reload (all or nothing), roll back, and detect drift.

What the operator sees: a reload either applies every file as a new numbered, hashed version, or
applies nothing and lists every error (file, field, reason). A reload of unchanged files changes
nothing and says so. Every reload and rollback is in the audit log.
"""
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from delivery.models import Destination, RoutingRule
from ingestion.models import Source
from ingestion.schedules import poll_schedules_sync
from opsconsole.audit import audit_record
from opsconsole.errors import ApplicationError
from transform.models import EnrichmentSource, QualityProfile, TransformRule

from .issues import DESTINATION, ENRICHMENT, QUALITY, ROUTING_RULE, SOURCE, TRANSFORM_RULE, ConfigIssue
from .loader import LoadedConfig, files_sha256, load_files, load_tree
from .models import ConfigVersion
from .runtime import runtime_reset

logger = logging.getLogger(__name__)

MIN_VERSIONS_KEPT = 30


class ConfigInvalid(ApplicationError):
    """The configuration has errors; nothing was applied. `.errors` lists {file, field, reason}."""

    def __init__(self, issues: list[ConfigIssue], message: str = "Configuration is invalid; nothing was applied."):
        self.errors = [i.as_dict() for i in issues]
        super().__init__(f"{message} ({len(issues)} error{'s' if len(issues) != 1 else ''})",
                         status_code=400, extra={"errors": self.errors})


def config_dir_path(config_dir: str | Path | None = None) -> Path:
    """The configuration tree: the given folder or PIPELINE_CONFIG_DIR, relative ones against BASE_DIR."""
    path = Path(config_dir or settings.PIPELINE_CONFIG_DIR)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def config_validate(*, config_dir: str | Path | None = None) -> tuple[LoadedConfig, list[ConfigIssue]]:
    """Read and check the whole tree; applies nothing."""
    return load_tree(config_dir_path(config_dir))


def _versions_kept() -> int:
    return max(MIN_VERSIONS_KEPT, int(getattr(settings, "CONFIG_VERSIONS_KEEP", MIN_VERSIONS_KEPT)))


def _replace_rows(loaded: LoadedConfig, number: int) -> None:
    """The applied rows of every kind, replaced by those of the new version."""
    for model in (Source, TransformRule, QualityProfile, EnrichmentSource, Destination, RoutingRule):
        model.objects.all().delete()
    EnrichmentSource.objects.bulk_create([
        EnrichmentSource(enrichment_id=i.spec["enrichment_id"], source_type=str(i.spec.get("type", "")),
                         enabled=i.spec.get("enabled", True), spec=i.spec, config_version=number)
        for i in loaded.of(ENRICHMENT)
    ])
    Source.objects.bulk_create([
        Source(source_id=i.spec["source_id"], source_type=i.spec["source_type"], enabled=i.spec.get("enabled", True),
               spec=i.spec, config_version=number)
        for i in loaded.of(SOURCE)
    ])
    TransformRule.objects.bulk_create([
        TransformRule(rule_id=i.spec["rule_id"], name=i.spec.get("name", ""), description=i.spec.get("description", ""),
                      enabled=i.spec.get("enabled", True), priority=i.spec.get("priority", 1000), spec=i.spec,
                      config_version=number)
        for i in loaded.of(TRANSFORM_RULE)
    ])
    QualityProfile.objects.bulk_create([
        QualityProfile(name="default", spec=i.spec, config_version=number) for i in loaded.of(QUALITY)
    ])
    Destination.objects.bulk_create([
        Destination(destination_id=i.spec["destination_id"], destination_type=i.spec["connection"]["type"],
                    enabled=i.spec.get("enabled", True), spec=i.spec, config_version=number)
        for i in loaded.of(DESTINATION)
    ])
    RoutingRule.objects.bulk_create([
        RoutingRule(rule_id=i.spec["rule_id"], enabled=i.spec.get("enabled", True), priority=i.spec.get("priority", 1000),
                    destination_id=i.spec["destination"], spec=i.spec, config_version=number)
        for i in loaded.of(ROUTING_RULE)
    ])


def _apply(*, loaded: LoadedConfig, actor: Any, comment: str, action: str, reason: str = "",
           details: dict | None = None) -> ConfigVersion:
    """Apply a checked configuration as the next version, in one transaction; audited either way.

    The returned version carries `changed` (False when the files equal the active version's, in
    which case nothing new is created) and `counts` (items per kind).
    """
    sha = files_sha256(loaded.files)
    counts = loaded.counts()
    try:
        with transaction.atomic():
            latest = ConfigVersion.objects.select_for_update().order_by("-number").first()
            active = ConfigVersion.objects.filter(is_active=True).first()
            changed = active is None or active.sha256 != sha
            if changed:
                number = (latest.number if latest else 0) + 1
                ConfigVersion.objects.filter(is_active=True).update(is_active=False)
                version = ConfigVersion.objects.create(
                    number=number, sha256=sha, files=loaded.files, comment=comment[:255], is_active=True,
                    applied_by=actor if getattr(actor, "is_authenticated", False) else None,
                )
                _replace_rows(loaded, number)
                ConfigVersion.objects.filter(number__lte=number - _versions_kept()).exclude(is_active=True).delete()
            else:
                version = active
            # Beat's poll schedules follow the applied sources (an unchanged reload repairs them too).
            poll_schedules = poll_schedules_sync()
            audit_record(
                actor=actor, action=action, target=f"config v{version.number}", reason=reason or comment,
                details={"version": version.number, "sha256": sha, "changed": changed, "counts": counts,
                         "previous": active.number if active else None, "poll_schedules": poll_schedules,
                         **(details or {})},
            )
    except IntegrityError as exc:
        raise ApplicationError("Another configuration change was applied at the same time; try again.",
                               status_code=409) from exc
    runtime_reset()
    version.changed = changed
    version.counts = counts
    logger.info("configuration %s: v%s %s", action, version.number, "applied" if changed else "unchanged",
                extra={"component": "config", "sha256": sha, "counts": counts})
    return version


def config_reload(*, actor: Any, config_dir: str | Path | None = None, comment: str = "") -> ConfigVersion:
    """Validate the whole tree and apply it as a new active version, or raise ConfigInvalid (nothing applied)."""
    loaded, issues = config_validate(config_dir=config_dir)
    if issues:
        raise ConfigInvalid(issues)
    return _apply(loaded=loaded, actor=actor, comment=comment, action="config.reload")


def config_rollback(*, actor: Any, number: int, reason: str) -> ConfigVersion:
    """Re-apply the files of an older version as a new version (the history stays as it was)."""
    if not (reason or "").strip():
        raise ApplicationError("A reason is required to roll back the configuration.")
    old = ConfigVersion.objects.filter(number=number).first()
    if old is None:
        raise ApplicationError(f"Configuration version {number} does not exist (or is no longer kept).", status_code=404)
    loaded, issues = load_files(old.files, root=f"v{number}")
    if issues:
        raise ConfigInvalid(issues, message=f"Version {number} no longer validates; nothing was applied.")
    return _apply(loaded=loaded, actor=actor, comment=f"rollback to v{number}: {reason}"[:255],
                  action="config.rollback", reason=reason, details={"rolled_back_to": number})


def config_drift(*, config_dir: str | Path | None = None) -> dict[str, Any]:
    """Files added, removed or changed on disk since the active version was applied."""
    loaded, issues = config_validate(config_dir=config_dir)
    active = ConfigVersion.objects.filter(is_active=True).first()
    applied: dict[str, str] = active.files if active else {}
    on_disk = loaded.files
    added = sorted(set(on_disk) - set(applied))
    removed = sorted(set(applied) - set(on_disk))
    changed = sorted(name for name in set(on_disk) & set(applied) if on_disk[name] != applied[name])
    return {
        "active_version": active.number if active else None,
        "active_sha256": active.sha256 if active else None,
        "disk_sha256": loaded.sha256,
        "drift": bool(added or removed or changed),
        "added": added,
        "removed": removed,
        "changed": changed,
        "disk_valid": not issues,
        "disk_errors": len(issues),
    }
