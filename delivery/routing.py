"""Routing rules (Runbook C.1 step 8), compiled once per configuration version.

match: source_id {in: [...]}, quality_score {gte|gt|lte|lt: x}, and optional `conditions`
(field conditions as in transform/conditions.py). A record goes to every matching rule's destination;
while that destination's circuit breaker is open, to the rule's `alternate_destination` if it has one.
A route the destination's `authorization` does not allow (allowed_sources, data_classification) is
refused with its reason, never delivered.
"""
from collections.abc import Callable
from dataclasses import dataclass, field

from transform.conditions import ConditionError, compile_condition

_NUMERIC = {
    "gte": lambda a, b: a >= b, "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b,
}


# Data classification levels, lowest first: a destination receives records up to its own level.
CLASSIFICATION_LEVELS = ("public", "internal", "confidential", "restricted")


@dataclass
class CompiledRoute:
    rule_id: str
    priority: int
    destination_id: str
    matches: Callable[[str, float, dict], bool]
    alternate_destination: str | None = None


@dataclass
class RoutePlan:
    destinations: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (destination_id, reason)


def authorization_refusal(source_id: str, source_spec: dict | None, destination_spec: dict) -> str | None:
    """Why this destination may not receive records of this source, or None if it may."""
    auth = destination_spec.get("authorization") or {}
    allowed = auth.get("allowed_sources")
    if allowed is not None and source_id not in allowed:
        return f"source '{source_id}' is not in allowed_sources of destination '{destination_spec.get('destination_id')}'"
    wanted = (source_spec or {}).get("data_classification", "internal")
    ceiling = auth.get("data_classification")
    if ceiling in CLASSIFICATION_LEVELS and wanted in CLASSIFICATION_LEVELS and \
            CLASSIFICATION_LEVELS.index(wanted) > CLASSIFICATION_LEVELS.index(ceiling):
        return f"source data classification '{wanted}' is above the destination's '{ceiling}'"
    return None


def compile_route(spec: dict) -> CompiledRoute:
    """Raises ConditionError naming the field at fault."""
    rule_id = spec.get("rule_id")
    if not isinstance(rule_id, str) or not rule_id:
        raise ConditionError("rule_id", "is required")
    destination = spec.get("destination")
    if not isinstance(destination, str) or not destination:
        raise ConditionError("destination", "is required (a destination_id)")
    match = spec.get("match") or {}
    if not isinstance(match, dict):
        raise ConditionError("match", "must be a mapping")
    checks: list[Callable[[str, float, dict], bool]] = []
    if "source_id" in match:
        src = match["source_id"]
        if not isinstance(src, dict) or not isinstance(src.get("in"), list):
            raise ConditionError("match.source_id", "must be {in: [source ids]}")
        allowed = set(src["in"])
        checks.append(lambda source_id, score, data: source_id in allowed)
    if "quality_score" in match:
        qs = match["quality_score"]
        if not isinstance(qs, dict) or not qs:
            raise ConditionError("match.quality_score", "must be a mapping like {gte: 0.7}")
        for op, limit in qs.items():
            if op not in _NUMERIC:
                raise ConditionError(f"match.quality_score.{op}", "unknown comparison (use gte, gt, lte, lt)")
            if not isinstance(limit, (int, float)) or isinstance(limit, bool):
                raise ConditionError(f"match.quality_score.{op}", "must be a number")
            compare = _NUMERIC[op]
            checks.append(lambda source_id, score, data, c=compare, b=float(limit): score is not None and c(score, b))
    if "conditions" in match:
        predicate = compile_condition({"all": match["conditions"]}, "match.conditions")
        checks.append(lambda source_id, score, data: predicate(data))
    alternate = spec.get("alternate_destination")
    if alternate is not None and (not isinstance(alternate, str) or not alternate or alternate == destination):
        raise ConditionError("alternate_destination", "must be another destination_id")
    unknown = set(match) - {"source_id", "quality_score", "conditions"}
    if unknown:
        raise ConditionError(f"match.{sorted(unknown)[0]}", "unknown match key (use source_id, quality_score, conditions)")
    priority = spec.get("priority", 1000)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ConditionError("priority", "must be an integer")
    return CompiledRoute(
        rule_id=rule_id, priority=priority, destination_id=destination,
        matches=lambda source_id, score, data: all(c(source_id, score, data) for c in checks),
        alternate_destination=alternate,
    )


class Router:
    def __init__(self, specs: list[dict], destinations: dict[str, dict], sources: dict[str, dict] | None = None):
        """`destinations`: the specs of enabled destinations; a route to any other is inactive."""
        routes = [compile_route(s) for s in specs if s.get("enabled", True)]
        self.destinations_by_id = destinations
        self.sources = sources or {}
        self.routes = sorted((r for r in routes if r.destination_id in destinations), key=lambda r: (r.priority, r.rule_id))
        self._refusals: dict[tuple[str, str], str | None] = {}

    def _refusal(self, source_id: str, destination_id: str) -> str | None:
        key = (source_id, destination_id)
        if key not in self._refusals:
            self._refusals[key] = authorization_refusal(
                source_id, self.sources.get(source_id), self.destinations_by_id[destination_id]
            )
        return self._refusals[key]

    def plan(self, source_id: str, score: float | None, data: dict, unavailable: frozenset[str] = frozenset()) -> RoutePlan:
        plan = RoutePlan()
        for route in self.routes:
            if not route.matches(source_id, score, data):
                continue
            target = route.destination_id
            if target in unavailable and route.alternate_destination in self.destinations_by_id:
                target = route.alternate_destination
            if target in plan.destinations or any(d == target for d, _ in plan.refused):
                continue
            refusal = self._refusal(source_id, target)
            if refusal:
                plan.refused.append((target, refusal))
            else:
                plan.destinations.append(target)
        return plan

    def destinations(self, source_id: str, score: float | None, data: dict) -> list[str]:
        return self.plan(source_id, score, data).destinations
