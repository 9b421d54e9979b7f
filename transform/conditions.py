"""Match conditions shared by transformation rules and routing rules, compiled to predicates.

A condition is either {"field": path, "condition": name, "value": ...}, {"all": [...]}, {"any": [...]},
or {"not": {...}}. Names: exists, not_exists, equals, not_equals, in, not_in, regex, gt, gte, lt, lte.
"""
import re
from collections.abc import Callable
from typing import Any

from opsconsole.fields import MISSING, get_path

Predicate = Callable[[dict], bool]

CONDITIONS = ("exists", "not_exists", "equals", "not_equals", "in", "not_in", "regex", "gt", "gte", "lt", "lte")


class ConditionError(ValueError):
    """A condition that cannot be compiled; `field` is the offending key."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def compile_condition(spec: Any, where: str = "match") -> Predicate:
    if spec is None:
        return lambda record: True
    if not isinstance(spec, dict):
        raise ConditionError(where, "must be a mapping")
    if "all" in spec or "any" in spec:
        key = "all" if "all" in spec else "any"
        items = spec[key]
        if not isinstance(items, list) or not items:
            raise ConditionError(f"{where}.{key}", "must be a non-empty list of conditions")
        parts = [compile_condition(item, f"{where}.{key}[{i}]") for i, item in enumerate(items)]
        if key == "all":
            return lambda record: all(p(record) for p in parts)
        return lambda record: any(p(record) for p in parts)
    if "not" in spec:
        inner = compile_condition(spec["not"], f"{where}.not")
        return lambda record: not inner(record)
    field = spec.get("field")
    if not isinstance(field, str) or not field:
        raise ConditionError(f"{where}.field", "is required (a field path)")
    name = spec.get("condition", "exists")
    if name not in CONDITIONS:
        raise ConditionError(f"{where}.condition", f"unknown condition '{name}' (known: {', '.join(CONDITIONS)})")
    value = spec.get("value")
    if name == "exists":
        return lambda r: get_path(r, field) is not MISSING and get_path(r, field) is not None
    if name == "not_exists":
        return lambda r: get_path(r, field) is MISSING or get_path(r, field) is None
    if name == "equals":
        return lambda r: get_path(r, field) == value
    if name == "not_equals":
        return lambda r: get_path(r, field) != value
    if name in ("in", "not_in"):
        if not isinstance(value, list):
            raise ConditionError(f"{where}.value", f"'{name}' needs a list")
        allowed = list(value)
        if name == "in":
            return lambda r: get_path(r, field) in allowed
        return lambda r: get_path(r, field) not in allowed
    if name == "regex":
        try:
            pattern = re.compile(str(value))
        except re.error as exc:
            raise ConditionError(f"{where}.value", f"regex does not compile: {exc}") from exc
        return lambda r: isinstance(get_path(r, field), str) and pattern.search(get_path(r, field)) is not None
    limit = _number(value)
    if limit is None:
        raise ConditionError(f"{where}.value", f"'{name}' needs a number")
    compare = {
        "gt": lambda a: a > limit, "gte": lambda a: a >= limit, "lt": lambda a: a < limit, "lte": lambda a: a <= limit,
    }[name]

    def numeric(record: dict) -> bool:
        actual = _number(get_path(record, field))
        return actual is not None and compare(actual)

    return numeric
