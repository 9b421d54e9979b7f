"""Match conditions shared by transformation rules and routing rules, compiled to predicates.

A condition is either {"field": path, "condition": name, "value": ...}, {"all": [...]}, {"any": [...]},
or {"not": {...}}; `all`/`any`/`not` nest to any depth, and paths are dotted (`customer.address.zip`).

Names: exists, not_exists, equals, not_equals, in, not_in, regex, contains, starts_with, ends_with,
gt, gte, lt, lte. Numeric comparisons read numbers and numeric strings ("42.5"); a value that is not
a number does not match. A path that runs into a list or a scalar does not match (the field is not
there as an object field).
"""
import re
from collections.abc import Callable
from typing import Any

from opsconsole.fields import MISSING, get_path

from .paths import PathError, path_check

Predicate = Callable[[dict], bool]

CONDITIONS = (
    "exists", "not_exists", "equals", "not_equals", "in", "not_in", "regex", "contains", "starts_with",
    "ends_with", "gt", "gte", "lt", "lte",
)
_NEEDS_VALUE = set(CONDITIONS) - {"exists", "not_exists"}


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
            number = float(value)
        except ValueError:
            return None
        return number if number == number else None  # NaN compares false with everything
    return None


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None


def compile_condition(spec: Any, where: str = "match") -> Predicate:
    if spec is None:
        return lambda record: True
    if not isinstance(spec, dict):
        raise ConditionError(where, "must be a mapping")
    combinators = [k for k in ("all", "any", "not") if k in spec]
    if len(combinators) > 1 or (combinators and "field" in spec):
        raise ConditionError(where, "give one of field, all, any or not per condition (nest them to combine)")
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
    try:
        path_check(field)
    except PathError as exc:
        raise ConditionError(f"{where}.field", str(exc)) from exc
    name = spec.get("condition", "exists")
    if name not in CONDITIONS:
        raise ConditionError(f"{where}.condition", f"unknown condition '{name}' (known: {', '.join(CONDITIONS)})")
    if name in _NEEDS_VALUE and "value" not in spec:
        raise ConditionError(f"{where}.value", f"is required for condition '{name}'")
    value = spec.get("value")
    if name == "exists":
        return lambda r: _present(get_path(r, field))
    if name == "not_exists":
        return lambda r: not _present(get_path(r, field))
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
        return lambda r: get_path(r, field) is MISSING or get_path(r, field) not in allowed
    if name == "regex":
        if not isinstance(value, str):
            raise ConditionError(f"{where}.value", "'regex' needs a pattern (a string)")
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ConditionError(f"{where}.value", f"regex does not compile: {exc}") from exc
        return lambda r: isinstance(v := get_path(r, field), str) and pattern.search(v) is not None
    if name in ("contains", "starts_with", "ends_with"):
        if name != "contains" and not isinstance(value, str):
            raise ConditionError(f"{where}.value", f"'{name}' needs a string")
        if name == "starts_with":
            return lambda r: isinstance(v := get_path(r, field), str) and v.startswith(value)
        if name == "ends_with":
            return lambda r: isinstance(v := get_path(r, field), str) and v.endswith(value)

        def contains(record: dict) -> bool:
            actual = get_path(record, field)
            if isinstance(actual, str):
                return isinstance(value, str) and value in actual
            return isinstance(actual, list) and value in actual

        return contains
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
