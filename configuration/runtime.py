"""The compiled pipeline of the active configuration version, built once per version per process.

Workers and web processes call `pipeline_runtime()` for every batch: one cheap query tells whether
the active version changed; if not, the compiled validators, rules, scorer and router are reused.
"""
import threading
from dataclasses import dataclass, field

from .models import ConfigVersion


@dataclass
class PipelineRuntime:
    version: int
    sources: dict  # source_id -> spec
    validators: dict  # source_id -> Validator
    rules: object  # transform.engine.RuleSet
    scorer: object  # transform.quality.QualityScorer
    router: object  # delivery.routing.Router
    destinations: dict  # destination_id -> spec (enabled and disabled)
    extras: dict = field(default_factory=dict)


_lock = threading.Lock()
_cached: PipelineRuntime | None = None


def active_version_number() -> int:
    return ConfigVersion.objects.filter(is_active=True).values_list("number", flat=True).first() or 0


def build_runtime(version: int) -> PipelineRuntime:
    from delivery.models import Destination, RoutingRule
    from delivery.routing import Router
    from ingestion.models import Source
    from ingestion.validation import compile_validator
    from transform.engine import RuleSet
    from transform.enrichment import EnrichmentRegistry
    from transform.models import EnrichmentSource, QualityProfile, TransformRule
    from transform.quality import QualityScorer

    sources = {s.source_id: s.spec for s in Source.objects.all()}
    destinations = {d.destination_id: d.spec for d in Destination.objects.all()}
    enabled_destinations = {d.destination_id: d.spec for d in Destination.objects.filter(enabled=True)}
    profile = QualityProfile.objects.filter(name="default").first()
    enrichment = EnrichmentRegistry([e.spec for e in EnrichmentSource.objects.all()])
    return PipelineRuntime(
        version=version,
        sources=sources,
        validators={sid: compile_validator(spec.get("validation") or {}) for sid, spec in sources.items()},
        rules=RuleSet([r.spec for r in TransformRule.objects.all()], enrichment=enrichment),
        scorer=QualityScorer(profile.spec if profile else None),
        router=Router([r.spec for r in RoutingRule.objects.all()], enabled_destinations, sources),
        destinations=destinations,
        extras={"enrichment": enrichment},
    )


def _close(runtime: PipelineRuntime | None) -> None:
    """Release what an old version holds open (enrichment database connections)."""
    enrichment = runtime.extras.get("enrichment") if runtime else None
    if enrichment is not None:
        enrichment.close()


def pipeline_runtime() -> PipelineRuntime:
    global _cached
    version = active_version_number()
    with _lock:
        if _cached is None or _cached.version != version:
            _close(_cached)
            _cached = build_runtime(version)
        return _cached


def runtime_reset() -> None:
    """Forget the compiled pipeline (tests and reload in the same process)."""
    global _cached
    with _lock:
        _cached = None
