"""Routing rules (Runbook C.1 step 8), compiled once per configuration version.

match: source_id {in: [...]}, quality_score {gte|gt|lte|lt: x}, and optional `conditions`
(field conditions as in transform/conditions.py). A record goes to every matching rule's destination.
"""
from collections.abc import Callable
from dataclasses import dataclass

from transform.conditions import ConditionError, compile_condition

_NUMERIC = {
    "gte": lambda a, b: a >= b, "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b,
}


@dataclass
class CompiledRoute:
    rule_id: str
    priority: int
    destination_id: str
    matches: Callable[[str, float, dict], bool]


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
    unknown = set(match) - {"source_id", "quality_score", "conditions"}
    if unknown:
        raise ConditionError(f"match.{sorted(unknown)[0]}", "unknown match key (use source_id, quality_score, conditions)")
    priority = spec.get("priority", 1000)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ConditionError("priority", "must be an integer")
    return CompiledRoute(
        rule_id=rule_id, priority=priority, destination_id=destination,
        matches=lambda source_id, score, data: all(c(source_id, score, data) for c in checks),
    )


class Router:
    def __init__(self, specs: list[dict], enabled_destinations: set[str]):
        routes = [compile_route(s) for s in specs if s.get("enabled", True)]
        # A route to a disabled or unknown destination is inactive (Runbook C.1 enables it later).
        self.routes = sorted(
            (r for r in routes if r.destination_id in enabled_destinations), key=lambda r: (r.priority, r.rule_id)
        )

    def destinations(self, source_id: str, score: float | None, data: dict) -> list[str]:
        found: list[str] = []
        for route in self.routes:
            if route.destination_id not in found and route.matches(source_id, score, data):
                found.append(route.destination_id)
        return found
