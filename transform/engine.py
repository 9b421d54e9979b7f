"""Transformation rules compiled once per configuration version and applied to whole batches.

A rule: rule_id, enabled, priority, match (see conditions.py), transform {type, config}, on_failure
(skip | fail | default, with default_value). Types: regex_replace, set, rename, remove.
"""
import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsconsole.fields import MISSING, delete_path, get_path, set_path

from .conditions import ConditionError, compile_condition

Transform = Callable[[dict], None]
ON_FAILURE = ("skip", "fail", "default")


class RuleError(ConditionError):
    """A rule that cannot be compiled (configuration error)."""


class TransformFailed(Exception):
    """A rule could not apply to one record."""


def _target(spec: dict, cfg: dict) -> str:
    target = cfg.get("field") or (spec.get("match") or {}).get("field")
    if not isinstance(target, str) or not target:
        raise RuleError("transform.config.field", "is required (or give match.field)")
    return target


def _regex_replace(spec: dict, cfg: dict) -> Transform:
    target = _target(spec, cfg)
    if "pattern" not in cfg:
        raise RuleError("transform.config.pattern", "is required")
    try:
        pattern = re.compile(str(cfg["pattern"]))
    except re.error as exc:
        raise RuleError("transform.config.pattern", f"regex does not compile: {exc}") from exc
    # The manual writes group references as $1; Python's re writes \g<1>.
    replacement = re.sub(r"\$(\d+)", r"\\g<\1>", str(cfg.get("replacement", "")))
    try:
        pattern.sub(replacement, "")
    except (re.error, IndexError) as exc:
        raise RuleError("transform.config.replacement", f"invalid replacement: {exc}") from exc

    def apply(record: dict) -> None:
        value = get_path(record, target)
        if value is MISSING or value is None:
            return
        if not isinstance(value, str):
            raise TransformFailed(f"field '{target}' is {type(value).__name__}, not a string")
        try:
            set_path(record, target, pattern.sub(replacement, value))
        except (re.error, IndexError) as exc:
            raise TransformFailed(f"replacement failed: {exc}") from exc

    return apply


def _set(spec: dict, cfg: dict) -> Transform:
    target = _target(spec, cfg)
    if "value" not in cfg:
        raise RuleError("transform.config.value", "is required")
    value = cfg["value"]
    only_missing = bool(cfg.get("only_if_missing", False))

    def apply(record: dict) -> None:
        if only_missing and get_path(record, target) not in (MISSING, None):
            return
        try:
            set_path(record, target, copy.deepcopy(value))
        except ValueError as exc:
            raise TransformFailed(str(exc)) from exc

    return apply


def _rename(spec: dict, cfg: dict) -> Transform:
    source, dest = cfg.get("from"), cfg.get("to")
    if not isinstance(source, str) or not source:
        raise RuleError("transform.config.from", "is required (a field path)")
    if not isinstance(dest, str) or not dest:
        raise RuleError("transform.config.to", "is required (a field path)")

    def apply(record: dict) -> None:
        value = get_path(record, source)
        if value is MISSING:
            return
        delete_path(record, source)
        try:
            set_path(record, dest, value)
        except ValueError as exc:
            raise TransformFailed(str(exc)) from exc

    return apply


def _remove(spec: dict, cfg: dict) -> Transform:
    fields = cfg.get("fields", [cfg["field"]] if "field" in cfg else None)
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
        raise RuleError("transform.config.fields", "is required (a list of field paths)")

    def apply(record: dict) -> None:
        for f in fields:
            delete_path(record, f)

    return apply


TRANSFORM_TYPES: dict[str, Callable[[dict, dict], Transform]] = {
    "regex_replace": _regex_replace,
    "set": _set,
    "rename": _rename,
    "remove": _remove,
}


@dataclass
class RuleStats:
    executions: int = 0
    matches: int = 0
    failures: int = 0


@dataclass
class CompiledRule:
    rule_id: str
    priority: int
    matches: Callable[[dict], bool]
    apply: Transform
    on_failure: str
    default_value: Any = None
    default_field: str | None = None
    stats: RuleStats = field(default_factory=RuleStats)


def compile_rule(spec: dict) -> CompiledRule:
    """Compile one rule spec; raises RuleError naming the field at fault."""
    if not isinstance(spec, dict):
        raise RuleError("rule", "must be a mapping")
    rule_id = spec.get("rule_id")
    if not isinstance(rule_id, str) or not rule_id:
        raise RuleError("rule_id", "is required")
    transform = spec.get("transform")
    if not isinstance(transform, dict):
        raise RuleError("transform", "is required (a mapping with type and config)")
    kind = transform.get("type")
    if kind not in TRANSFORM_TYPES:
        raise RuleError("transform.type", f"unknown rule type '{kind}' (known: {', '.join(sorted(TRANSFORM_TYPES))})")
    cfg = transform.get("config") or {}
    if not isinstance(cfg, dict):
        raise RuleError("transform.config", "must be a mapping")
    try:
        matches = compile_condition(spec.get("match"))
    except ConditionError as exc:
        raise RuleError(exc.field, exc.reason) from exc
    on_failure = spec.get("on_failure", "skip")
    if on_failure not in ON_FAILURE:
        raise RuleError("on_failure", f"must be one of {', '.join(ON_FAILURE)}")
    priority = spec.get("priority", 1000)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise RuleError("priority", "must be an integer")
    default_field = None
    if on_failure == "default":
        if "default_value" not in spec:
            raise RuleError("default_value", "is required when on_failure is default")
        default_field = _target(spec, cfg)
    return CompiledRule(
        rule_id=rule_id, priority=priority, matches=matches, apply=TRANSFORM_TYPES[kind](spec, cfg),
        on_failure=on_failure, default_value=spec.get("default_value"), default_field=default_field,
    )


@dataclass
class Outcome:
    data: dict
    failed_rule: str | None = None
    reason: str = ""


class RuleSet:
    """Enabled rules in priority order."""

    def __init__(self, specs: list[dict]):
        rules = [compile_rule(s) for s in specs if s.get("enabled", True)]
        self.rules = sorted(rules, key=lambda r: (r.priority, r.rule_id))

    def apply(self, record: Any) -> Outcome:
        if not isinstance(record, dict):
            return Outcome(data=record, failed_rule="-", reason="record is not a JSON object")
        data = copy.deepcopy(record)
        for rule in self.rules:
            rule.stats.executions += 1
            if not rule.matches(data):
                continue
            rule.stats.matches += 1
            before = copy.deepcopy(data) if rule.on_failure != "fail" else None
            try:
                rule.apply(data)
            except TransformFailed as exc:
                rule.stats.failures += 1
                if rule.on_failure == "fail":
                    return Outcome(data=data, failed_rule=rule.rule_id, reason=f"rule {rule.rule_id}: {exc}")
                data = before
                if rule.on_failure == "default":
                    set_path(data, rule.default_field, copy.deepcopy(rule.default_value))
        return Outcome(data=data)
