"""Quality scoring from beta/quality/scoring.yaml (Runbook B.3).

score = sum(weight[d] * dimension_score[d]) / sum(weights); each dimension in [0, 1].

completeness   1 - penalty_per_missing * (required fields missing, null or empty)
timeliness     1 - penalty_per_hour * (hours beyond max_age_hours), age from `field` (default timestamp);
               a timestamp that cannot be read scores 0
consistency    cross-field rules:
                 - {name, when: <condition>, require: <condition>}   (conditions as in rule matches)
                 - {name, field, compare: eq|ne|lt|lte|gt|gte, other_field}  (numbers, times, text)
conformance    format rules: {name?, field, format: email|e164|uuid|iso8601_date|iso8601_datetime|
               country_code|currency_code, pattern, type: string|number|integer|boolean|object|list,
               allowed: [...], max_length}
For consistency and conformance: with `penalty_per_violation` the score is 1 - penalty * violations,
otherwise the share of applicable rules that passed (a rule whose fields are absent does not apply:
absence is completeness's business).

Levels: below reject -> reject (not delivered, counted with its reason), below error -> error,
below warn -> warn, else ok. Every score comes with its dimensions and the issues that cost points.
"""
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsconsole.fields import MISSING, get_path

from .conditions import ConditionError, compile_condition
from .paths import PathError, path_check

DIMENSIONS = ("completeness", "consistency", "conformance", "timeliness")
LEVELS = ("ok", "warn", "error", "reject")
FORMATS = {
    "email": re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    "e164": re.compile(r"^\+[1-9][0-9]{6,14}$"),
    "uuid": re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    "country_code": re.compile(r"^[A-Z]{2}$"),
    "currency_code": re.compile(r"^[A-Z]{3}$"),
}
TIME_FORMATS = ("iso8601_date", "iso8601_datetime")
TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}
COMPARES = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
}


class QualityConfigError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class Score:
    total: float
    dimensions: dict[str, float]
    level: str  # ok | warn | error | reject
    issues: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"score": self.total, "level": self.level, "dimensions": self.dimensions, "issues": self.issues}


def _parse_time(value) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None and value != ""


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        ta, tb = _parse_time(a), _parse_time(b)
        if ta is not None and tb is not None:
            return ta, tb
        return a, b
    return None


def _number(section: dict, key: str, where: str, default: float) -> float:
    value = section.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise QualityConfigError(f"{where}.{key}", "must be a number of at least 0")
    return float(value)


def _field(rule: dict, key: str, where: str) -> str:
    try:
        return path_check(rule.get(key))
    except PathError as exc:
        raise QualityConfigError(f"{where}.{key}", str(exc)) from exc


class _Check:
    """One consistency or conformance rule: applies(record) and passes(record), with a name for issues."""

    def __init__(self, name: str, applies, passes, describe: str):
        self.name, self.applies, self.passes, self.describe = name, applies, passes, describe


def _consistency_rule(rule: Any, where: str) -> _Check:
    if not isinstance(rule, dict):
        raise QualityConfigError(where, "must be a mapping")
    name = rule.get("name") or rule.get("rule")
    if not isinstance(name, str) or not name:
        raise QualityConfigError(f"{where}.name", "is required")
    if "require" in rule:
        try:
            when = compile_condition(rule.get("when"), f"{where}.when")
            require = compile_condition(rule["require"], f"{where}.require")
        except ConditionError as exc:
            raise QualityConfigError(exc.field, exc.reason) from exc
        return _Check(name, when, require, name)
    first, other = _field(rule, "field", where), _field(rule, "other_field", where)
    op = rule.get("compare")
    if op not in COMPARES:
        raise QualityConfigError(f"{where}.compare", f"must be one of {', '.join(COMPARES)}")
    compare = COMPARES[op]

    def applies(record: dict) -> bool:
        return _present(get_path(record, first)) and _present(get_path(record, other))

    def passes(record: dict) -> bool:
        pair = _comparable(get_path(record, first), get_path(record, other))
        if pair is None:
            return False
        try:
            return bool(compare(*pair))
        except TypeError:
            return False

    return _Check(name, applies, passes, f"{name} ({first} {op} {other})")


def _conformance_rule(rule: Any, where: str) -> _Check:
    if not isinstance(rule, dict):
        raise QualityConfigError(where, "must be a mapping")
    path = _field(rule, "field", where)
    checks = []
    words = []
    if "format" in rule:
        fmt = rule["format"]
        if fmt in FORMATS:
            pattern = FORMATS[fmt]
            checks.append(lambda v, p=pattern: isinstance(v, str) and p.match(v) is not None)
        elif fmt == "iso8601_date":
            checks.append(lambda v: isinstance(v, str) and _is_date(v))
        elif fmt == "iso8601_datetime":
            checks.append(lambda v: isinstance(v, str) and _parse_time(v) is not None)
        else:
            known = ", ".join([*FORMATS, *TIME_FORMATS])
            raise QualityConfigError(f"{where}.format", f"unknown format '{fmt}' (known: {known})")
        words.append(f"format {fmt}")
    if "pattern" in rule:
        try:
            pattern = re.compile(str(rule["pattern"]))
        except re.error as exc:
            raise QualityConfigError(f"{where}.pattern", f"regex does not compile: {exc}") from exc
        checks.append(lambda v, p=pattern: isinstance(v, str) and p.search(v) is not None)
        words.append("pattern")
    if "type" in rule:
        if rule["type"] not in TYPES:
            raise QualityConfigError(f"{where}.type", f"must be one of {', '.join(TYPES)}")
        checks.append(TYPES[rule["type"]])
        words.append(f"type {rule['type']}")
    if "allowed" in rule:
        if not isinstance(rule["allowed"], list) or not rule["allowed"]:
            raise QualityConfigError(f"{where}.allowed", "must be a non-empty list of values")
        allowed = list(rule["allowed"])
        checks.append(lambda v: v in allowed)
        words.append("allowed values")
    if "max_length" in rule:
        limit = rule["max_length"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise QualityConfigError(f"{where}.max_length", "must be a positive integer")
        checks.append(lambda v: not isinstance(v, str) or len(v) <= limit)
        words.append(f"max length {limit}")
    if not checks:
        raise QualityConfigError(where, "needs at least one of format, pattern, type, allowed, max_length")
    name = rule.get("name") or f"{path}: {', '.join(words)}"
    return _Check(str(name), lambda r: _present(get_path(r, path)),
                  lambda r: all(c(get_path(r, path)) for c in checks), str(name))


def _is_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


class QualityScorer:
    """Compiled scoring.yaml; QualityConfigError names the field at fault."""

    def __init__(self, spec: dict | None):
        qs = (spec or {}).get("quality_scoring", {}) or {}
        weights = qs.get("weights", {}) or {}
        self.weights = {d: float(weights.get(d, 0.0)) for d in DIMENSIONS}
        thresholds = qs.get("thresholds", {}) or {}
        self.warn = float(thresholds.get("warn", 0.0))
        self.error = float(thresholds.get("error", 0.0))
        self.reject = float(thresholds.get("reject", 0.0))
        rules = qs.get("rules", {}) or {}
        where = "quality_scoring.rules"
        completeness = rules.get("completeness", {}) or {}
        self.required = list(completeness.get("required_fields", []))
        self.penalty_missing = _number(completeness, "penalty_per_missing", f"{where}.completeness", 0.0)
        timeliness = rules.get("timeliness", {}) or {}
        self.time_field = timeliness.get("field", "timestamp")
        self.max_age_hours = _number(timeliness, "max_age_hours", f"{where}.timeliness", 0.0)
        self.penalty_hour = _number(timeliness, "penalty_per_hour", f"{where}.timeliness", 0.0)
        self.consistency, self.consistency_penalty = self._rules(rules, "consistency", "rules", _consistency_rule)
        self.conformance, self.conformance_penalty = self._rules(rules, "conformance", "formats", _conformance_rule)

    @staticmethod
    def _rules(rules: dict, dimension: str, key: str, build) -> tuple[list[_Check], float | None]:
        where = f"quality_scoring.rules.{dimension}"
        section = rules.get(dimension) or {}
        if not isinstance(section, dict):
            raise QualityConfigError(where, "must be a mapping")
        items = section.get(key, [])
        if not isinstance(items, list):
            raise QualityConfigError(f"{where}.{key}", "must be a list")
        penalty = _number(section, "penalty_per_violation", where, 0.0) if "penalty_per_violation" in section else None
        return [build(item, f"{where}.{key}[{i}]") for i, item in enumerate(items)], penalty

    def thresholds(self) -> dict[str, float]:
        return {"warn": self.warn, "error": self.error, "reject": self.reject}

    def level_of(self, total: float) -> str:
        if total < self.reject:
            return "reject"
        if total < self.error:
            return "error"
        if total < self.warn:
            return "warn"
        return "ok"

    @staticmethod
    def _rule_score(checks: list[_Check], penalty: float | None, record: dict, dimension: str,
                    issues: list[str]) -> float:
        applicable = violations = 0
        for check in checks:
            try:
                if not check.applies(record):
                    continue
                applicable += 1
                ok = check.passes(record)
            except Exception:  # odd data in a record is a violation, never a crash
                ok = False
            if not ok:
                violations += 1
                issues.append(f"{dimension}: {check.describe}")
        if penalty is not None:
            return max(0.0, 1.0 - penalty * violations)
        return (applicable - violations) / applicable if applicable else 1.0

    def score(self, record: dict, now: datetime) -> Score:
        dims = {d: 1.0 for d in DIMENSIONS}
        issues: list[str] = []
        missing = [f for f in self.required if not _present(get_path(record, f))]
        if missing:
            issues.append(f"completeness: missing {', '.join(missing)}")
        dims["completeness"] = max(0.0, 1.0 - len(missing) * self.penalty_missing)
        raw_time = get_path(record, self.time_field)
        if raw_time is not MISSING and raw_time is not None:
            stamp = _parse_time(raw_time)
            if stamp is None:
                dims["timeliness"] = 0.0
                issues.append(f"timeliness: {self.time_field} is not a readable time")
            else:
                age_hours = (now - stamp).total_seconds() / 3600.0
                over = max(0.0, age_hours - self.max_age_hours)
                dims["timeliness"] = max(0.0, 1.0 - over * self.penalty_hour)
                if over > 0:
                    issues.append(f"timeliness: {age_hours:.1f} h old (max {self.max_age_hours:g} h)")
        dims["consistency"] = self._rule_score(self.consistency, self.consistency_penalty, record, "consistency", issues)
        dims["conformance"] = self._rule_score(self.conformance, self.conformance_penalty, record, "conformance", issues)
        dims = {d: round(v, 4) for d, v in dims.items()}
        total_weight = sum(self.weights.values())
        total = sum(self.weights[d] * dims[d] for d in DIMENSIONS) / total_weight if total_weight else 1.0
        total = round(total, 4)
        return Score(total=total, dimensions=dims, level=self.level_of(total), issues=issues)
