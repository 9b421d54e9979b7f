"""Transformation rules compiled once per configuration version and applied to whole batches.

A rule (Runbook B.1): rule_id, name, description, enabled, priority, match (see conditions.py),
transform {type, config}, on_failure (skip | fail | default, with default_value), metrics {emit, tags}.

Transform types (config keys in brackets):
  regex_replace  [field, pattern, replacement ($1 or \\1), count, ignore_case, max_input_length]
  set            [field, value, only_if_missing]        default  [field, value]  (set when missing)
  rename         [from, to]                             copy     [from, to]
  remove         [fields | field]                       drop     [reason]  (the record is filtered out)
  case           [field | fields, to: upper|lower|title|capitalize]
  trim           [field | fields, side: both|left|right, chars, collapse_whitespace]
  cast           [field, to: int|float|decimal|bool|string|date|datetime, format, scale,
                  assume_timezone, unit: s|ms]  (date/datetime become ISO 8601; datetimes in UTC)
  map            [field, values, default, to, on_unmapped: keep|default|fail]
  concat         [fields, to, separator, skip_missing]
  split          [field, separator, to, into, maxsplit, strip, remove_empty]
  mask           [field | fields, keep_first, keep_last, char]
  hash           [field | fields, algorithm, salt_ref, prefix]
  enrich         [source, key_field, fields (list or {source field: record path}), target,
                  on_missing: ignore|fail, overwrite]

Rules run in priority order, rule after rule over the whole batch (so an enrich rule looks its keys
up once per batch). A transform either applies completely or fails without changing the record;
`on_failure` then decides: skip (the record stays as it was before this rule), fail (the record goes
to the DLQ with the rule and the reason), default (the rule's target field gets `default_value`).
"""
import copy
import hashlib
import hmac
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from opsconsole.fields import MISSING

from .conditions import ConditionError, compile_condition
from .paths import (
    PathBlocked,
    PathError,
    path_check,
    settable_check,
    strict_delete,
    strict_get,
    strict_set,
    top_level,
)

ON_FAILURE = ("skip", "fail", "default")
CAST_TYPES = ("int", "float", "decimal", "bool", "string", "date", "datetime")
CASES = ("upper", "lower", "title", "capitalize")
HASH_ALGORITHMS = ("sha256", "sha512", "sha3_256", "blake2b")
# Strings longer than this are not given to a regex (a pathological value must not stall a worker).
MAX_REGEX_INPUT = 100_000
TRUE_WORDS = {"true", "t", "yes", "y", "1", "on"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "off"}


class RuleError(ConditionError):
    """A rule that cannot be compiled (configuration error)."""


class TransformFailed(Exception):
    """A rule could not apply to one record."""


# What a compiled transform does to one record; `context` is what `prepare` found for the batch.
Apply = Callable[[dict, Any], None]
Prepare = Callable[[list[dict], Any], Any]


@dataclass
class Step:
    apply: Apply
    touches: frozenset[str]  # top-level fields it may change (restored when it fails)
    target: str | None = None  # the field on_failure: default sets
    prepare: Prepare | None = None
    drops: bool = False
    enrichment_source: str | None = None


# --- config helpers -----------------------------------------------------------------------------

def _path(cfg: dict, key: str, *, required: bool = True, fallback: str | None = None) -> str | None:
    value = cfg.get(key, fallback)
    if value is None and not required:
        return None
    if value is None:
        raise RuleError(f"transform.config.{key}", "is required (a field path)")
    try:
        return path_check(value)
    except PathError as exc:
        raise RuleError(f"transform.config.{key}", str(exc)) from exc


def _match_field(spec: dict) -> str | None:
    match = spec.get("match")
    value = match.get("field") if isinstance(match, dict) else None
    return value if isinstance(value, str) and value else None


def _target(spec: dict, cfg: dict) -> str:
    """config.field, or the field the rule matches on."""
    return _path(cfg, "field", fallback=_match_field(spec))


def _path_list(cfg: dict, key: str) -> list[str]:
    """config.<key>: a non-empty list of valid field paths."""
    paths = cfg[key]
    if not isinstance(paths, list) or not paths:
        raise RuleError(f"transform.config.{key}", "must be a non-empty list of field paths")
    for i, item in enumerate(paths):
        try:
            path_check(item)
        except PathError as exc:
            raise RuleError(f"transform.config.{key}[{i}]", str(exc)) from exc
    return list(paths)


def _fields(spec: dict, cfg: dict) -> list[str]:
    """config.fields (a list) or config.field, or the match field."""
    if "fields" in cfg:
        return _path_list(cfg, "fields")
    return [_target(spec, cfg)]


def _choice(cfg: dict, key: str, choices: tuple, default: Any = None) -> Any:
    value = cfg.get(key, default)
    if value is None:
        raise RuleError(f"transform.config.{key}", f"is required (one of {', '.join(choices)})")
    if value not in choices:
        raise RuleError(f"transform.config.{key}", f"must be one of {', '.join(choices)} (got '{value}')")
    return value


def _int(cfg: dict, key: str, default: int, minimum: int = 0) -> int:
    value = cfg.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RuleError(f"transform.config.{key}", f"must be an integer of at least {minimum}")
    return value


def _bool(cfg: dict, key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        raise RuleError(f"transform.config.{key}", "must be true or false")
    return value


def _string(cfg: dict, key: str, default: str | None = None) -> str:
    value = cfg.get(key, default)
    if not isinstance(value, str):
        raise RuleError(f"transform.config.{key}", "must be a string")
    return value


def _get(record: dict, path: str) -> Any:
    try:
        return strict_get(record, path)
    except PathBlocked as exc:
        raise TransformFailed(str(exc)) from exc


def _set_all(record: dict, values: list[tuple[str, Any]]) -> None:
    """Set several fields, all or none: every path is checked before anything changes."""
    try:
        for path, _ in values:
            settable_check(record, path)
    except PathBlocked as exc:
        raise TransformFailed(str(exc)) from exc
    for path, value in values:
        strict_set(record, path, value)


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise TransformFailed(f"{what} is {_describe(value)}, not a string")
    return str(value)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _json_text(value: Any, *, sort: bool = False) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort else 0).decode()
    except TypeError:  # integers beyond 64 bits, which JSON allows
        import json

        return json.dumps(value, sort_keys=sort)


def _shown(value: Any, limit: int = 40) -> str:
    try:
        text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    except TypeError:  # integers beyond 64 bits
        text = repr(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


# --- transform types ----------------------------------------------------------------------------

def _regex_replace(spec: dict, cfg: dict) -> Step:
    target = _target(spec, cfg)
    if "pattern" not in cfg:
        raise RuleError("transform.config.pattern", "is required")
    flags = re.IGNORECASE if _bool(cfg, "ignore_case", False) else 0
    try:
        pattern = re.compile(_string(cfg, "pattern"), flags)
    except re.error as exc:
        raise RuleError("transform.config.pattern", f"regex does not compile: {exc}") from exc
    raw = cfg.get("replacement", "")
    if not isinstance(raw, str):
        raise RuleError("transform.config.replacement", "must be a string")
    # The manual writes group references as $1; Python's re writes \g<1>. A literal $ stays as it is.
    replacement = re.sub(r"\$(\d+)", r"\\g<\1>", raw)
    try:
        pattern.sub(replacement, "")
        for ref in re.findall(r"\\g<(\d+)>|\\(\d+)", replacement):
            number = int(ref[0] or ref[1])
            if number > pattern.groups:
                raise RuleError("transform.config.replacement",
                                f"refers to group {number} but the pattern has {pattern.groups} group(s)")
    except re.error as exc:
        raise RuleError("transform.config.replacement", f"invalid replacement: {exc}") from exc
    count = _int(cfg, "count", 0)
    limit = _int(cfg, "max_input_length", MAX_REGEX_INPUT, minimum=1)

    def apply(record: dict, _ctx: Any) -> None:
        value = _get(record, target)
        if value is MISSING or value is None:
            return
        if not isinstance(value, str):
            raise TransformFailed(f"field '{target}' is {_describe(value)}, not a string")
        if len(value) > limit:
            raise TransformFailed(f"field '{target}' has {len(value)} characters, over the limit of {limit} for a regex")
        try:
            result = pattern.sub(replacement, value, count=count)
        except (re.error, IndexError) as exc:
            raise TransformFailed(f"replacement failed: {exc}") from exc
        _set_all(record, [(target, result)])

    return Step(apply, frozenset({top_level(target)}), target)


def _set(spec: dict, cfg: dict, *, only_missing_default: bool = False) -> Step:
    target = _target(spec, cfg)
    if "value" not in cfg:
        raise RuleError("transform.config.value", "is required")
    value = cfg["value"]
    only_missing = _bool(cfg, "only_if_missing", only_missing_default)

    def apply(record: dict, _ctx: Any) -> None:
        if only_missing and _get(record, target) not in (MISSING, None, ""):
            return
        _set_all(record, [(target, copy.deepcopy(value))])

    return Step(apply, frozenset({top_level(target)}), target)


def _default(spec: dict, cfg: dict) -> Step:
    return _set(spec, cfg, only_missing_default=True)


def _move(spec: dict, cfg: dict, *, keep_source: bool) -> Step:
    source = _path(cfg, "from")
    dest = _path(cfg, "to")
    if source == dest:
        raise RuleError("transform.config.to", "must differ from 'from'")

    def apply(record: dict, _ctx: Any) -> None:
        value = _get(record, source)
        if value is MISSING:
            return
        _set_all(record, [(dest, copy.deepcopy(value) if keep_source else value)])
        if not keep_source:
            strict_delete(record, source)

    touches = {top_level(dest)} | (set() if keep_source else {top_level(source)})
    return Step(apply, frozenset(touches), dest)


def _rename(spec: dict, cfg: dict) -> Step:
    return _move(spec, cfg, keep_source=False)


def _copy(spec: dict, cfg: dict) -> Step:
    return _move(spec, cfg, keep_source=True)


def _remove(spec: dict, cfg: dict) -> Step:
    fields = _fields(spec, cfg)

    def apply(record: dict, _ctx: Any) -> None:
        for f in fields:
            strict_delete(record, f)

    return Step(apply, frozenset(top_level(f) for f in fields), None)


def _each_string(fields: list[str], change: Callable[[str], str]) -> Apply:
    """Apply `change` to every listed field that is present; a non-string fails the rule."""

    def apply(record: dict, _ctx: Any) -> None:
        updates = []
        for f in fields:
            value = _get(record, f)
            if value is MISSING or value is None:
                continue
            if not isinstance(value, str):
                raise TransformFailed(f"field '{f}' is {_describe(value)}, not a string")
            updates.append((f, change(value)))
        _set_all(record, updates)

    return apply


def _case(spec: dict, cfg: dict) -> Step:
    fields = _fields(spec, cfg)
    to = _choice(cfg, "to", CASES, cfg.get("case"))
    change = {"upper": str.upper, "lower": str.lower, "title": str.title, "capitalize": str.capitalize}[to]
    return Step(_each_string(fields, change), frozenset(top_level(f) for f in fields), fields[0])


def _trim(spec: dict, cfg: dict) -> Step:
    fields = _fields(spec, cfg)
    side = _choice(cfg, "side", ("both", "left", "right"), "both")
    chars = cfg.get("chars")
    if chars is not None and (not isinstance(chars, str) or not chars):
        raise RuleError("transform.config.chars", "must be a non-empty string of characters to trim")
    collapse = _bool(cfg, "collapse_whitespace", False)
    strip = {"both": str.strip, "left": str.lstrip, "right": str.rstrip}[side]

    def change(value: str) -> str:
        value = strip(value, chars)
        return re.sub(r"\s+", " ", value) if collapse else value

    return Step(_each_string(fields, change), frozenset(top_level(f) for f in fields), fields[0])


# cast

def _cast_int(value: Any, _cfg: dict) -> int:
    if isinstance(value, bool):
        raise TransformFailed("a boolean is not cast to int (use map for true/false)")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise TransformFailed(f"{value!r} is not a whole number")
        return int(value)
    text = _text(value, "value").strip().replace("_", "")
    try:
        return int(text, 10)
    except ValueError:
        pass
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise TransformFailed(f"{_shown(value)} is not an integer") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise TransformFailed(f"{_shown(value)} is not a whole number")
    return int(number)


def _cast_float(value: Any, _cfg: dict) -> float:
    if isinstance(value, bool):
        raise TransformFailed("a boolean is not cast to float")
    try:
        number = float(value) if isinstance(value, (int, float)) else float(_text(value, "value").strip())
    except (ValueError, OverflowError):
        raise TransformFailed(f"{_shown(value)} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise TransformFailed(f"{_shown(value)} is not a finite number (JSON cannot hold it)")
    return number


def _cast_decimal(value: Any, cfg: dict) -> str:
    if isinstance(value, bool):
        raise TransformFailed("a boolean is not cast to decimal")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else _text(value, "value").strip())
    except InvalidOperation:
        raise TransformFailed(f"{_shown(value)} is not a decimal number") from None
    if not number.is_finite():
        raise TransformFailed(f"{_shown(value)} is not a finite number")
    scale = cfg.get("scale")
    if scale is not None:
        number = number.quantize(Decimal(1).scaleb(-scale))
    return format(number, "f")


def _cast_bool(value: Any, _cfg: dict) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise TransformFailed(f"{_shown(value)} is not a boolean (true/false, yes/no, 1/0, on/off)")


def _cast_string(value: Any, _cfg: dict) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _text(value, "value")


def _timezone(cfg: dict) -> Any:
    name = cfg.get("assume_timezone", "UTC")
    if not isinstance(name, str):
        raise RuleError("transform.config.assume_timezone", "must be a time zone name such as Europe/Berlin")
    try:
        return UTC if name.upper() == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError("transform.config.assume_timezone", f"unknown time zone '{name}'") from None


def _parse_datetime(value: Any, cfg: dict) -> datetime:
    if isinstance(value, bool):
        raise TransformFailed("a boolean is not a date or time")
    if isinstance(value, (int, float)):
        seconds = value / 1000.0 if cfg.get("unit") == "ms" else float(value)
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise TransformFailed(f"{value!r} is out of range for a timestamp") from None
    text = _text(value, "value").strip()
    try:
        if cfg.get("format"):
            parsed = datetime.strptime(text, cfg["format"])
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        expected = f"format {cfg['format']!r}" if cfg.get("format") else "ISO 8601"
        raise TransformFailed(f"{_shown(value)} is not a date/time in {expected}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=cfg["_tz"])
    return parsed


def _cast_datetime(value: Any, cfg: dict) -> str:
    moment = _parse_datetime(value, cfg).astimezone(UTC)
    text = moment.replace(tzinfo=None).isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text + "Z"


def _cast_date(value: Any, cfg: dict) -> str:
    if isinstance(value, str) and not cfg.get("format"):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    moment = _parse_datetime(value, cfg)
    # A moment with a zone is first brought to UTC, so the date is the same wherever it was written.
    return moment.astimezone(UTC).date().isoformat() if moment.tzinfo else moment.date().isoformat()


CASTS: dict[str, Callable[[Any, dict], Any]] = {
    "int": _cast_int, "float": _cast_float, "decimal": _cast_decimal, "bool": _cast_bool, "string": _cast_string,
    "date": _cast_date, "datetime": _cast_datetime,
}


def cast_value(value: Any, to: str, cfg: dict | None = None) -> Any:
    """Cast one value as the cast transform does (TransformFailed when it cannot)."""
    cfg = dict(cfg or {})
    cfg.setdefault("_tz", UTC)
    return CASTS[to](value, cfg)


def _cast(spec: dict, cfg: dict) -> Step:
    target = _target(spec, cfg)
    to = _choice(cfg, "to", CAST_TYPES, cfg.get("type"))
    options = {"_tz": _timezone(cfg)}
    if "format" in cfg:
        if to not in ("date", "datetime"):
            raise RuleError("transform.config.format", "applies only to date and datetime casts")
        options["format"] = _string(cfg, "format")
    if "scale" in cfg:
        if to != "decimal":
            raise RuleError("transform.config.scale", "applies only to decimal casts")
        options["scale"] = _int(cfg, "scale", 2)
    if "unit" in cfg:
        options["unit"] = _choice(cfg, "unit", ("s", "ms"))
    convert = CASTS[to]

    def apply(record: dict, _ctx: Any) -> None:
        value = _get(record, target)
        if value is MISSING or value is None:
            return
        try:
            result = convert(value, options)
        except TransformFailed as exc:
            raise TransformFailed(f"cannot cast field '{target}' to {to}: {exc}") from exc
        _set_all(record, [(target, result)])

    return Step(apply, frozenset({top_level(target)}), target)


def _map(spec: dict, cfg: dict) -> Step:
    source = _target(spec, cfg)
    dest = _path(cfg, "to", required=False) or source
    values = cfg.get("values", cfg.get("mapping"))
    if not isinstance(values, dict) or not values:
        raise RuleError("transform.config.values", "is required (a mapping of value: replacement)")
    table = {str(k): v for k, v in values.items()}
    has_default = "default" in cfg
    default = cfg.get("default")
    on_unmapped = _choice(cfg, "on_unmapped", ("keep", "default", "fail"), "default" if has_default else "keep")
    if on_unmapped == "default" and not has_default:
        raise RuleError("transform.config.default", "is required when on_unmapped is default")

    def apply(record: dict, _ctx: Any) -> None:
        value = _get(record, source)
        if value is MISSING:
            return
        key = value if isinstance(value, str) else _json_text(value) if value is not None else "null"
        if isinstance(value, bool):
            key = "true" if value else "false"
        if key in table:
            result = copy.deepcopy(table[key])
        elif isinstance(value, bool) and str(value) in table:  # YAML keys True/False read as "True"
            result = copy.deepcopy(table[str(value)])
        elif on_unmapped == "default":
            result = copy.deepcopy(default)
        elif on_unmapped == "fail":
            raise TransformFailed(f"value {_shown(value)} of field '{source}' is not in the map")
        elif dest == source:
            return
        else:
            result = copy.deepcopy(value)
        _set_all(record, [(dest, result)])

    return Step(apply, frozenset({top_level(dest)}), dest)


def _concat(spec: dict, cfg: dict) -> Step:
    fields = cfg.get("fields")
    if not isinstance(fields, list) or len(fields) < 1:
        raise RuleError("transform.config.fields", "is required (a list of field paths to join)")
    for i, f in enumerate(fields):
        try:
            path_check(f)
        except PathError as exc:
            raise RuleError(f"transform.config.fields[{i}]", str(exc)) from exc
    dest = _path(cfg, "to")
    separator = _string(cfg, "separator", " ")
    skip_missing = _bool(cfg, "skip_missing", True)

    def apply(record: dict, _ctx: Any) -> None:
        parts = []
        for f in fields:
            value = _get(record, f)
            if value is MISSING or value is None or value == "":
                if not skip_missing:
                    raise TransformFailed(f"field '{f}' is missing")
                continue
            parts.append(_cast_string(value, {}) if not isinstance(value, str) else value)
        _set_all(record, [(dest, separator.join(parts))])

    return Step(apply, frozenset({top_level(dest)}), dest)


def _split(spec: dict, cfg: dict) -> Step:
    source = _target(spec, cfg)
    separator = _string(cfg, "separator", ",")
    if not separator:
        raise RuleError("transform.config.separator", "must not be empty")
    into = _path_list(cfg, "into") if cfg.get("into") is not None else None
    dest = _path(cfg, "to", required=False) or source
    maxsplit = _int(cfg, "maxsplit", len(into) - 1 if into else -1, minimum=-1)
    strip = _bool(cfg, "strip", True)
    remove_empty = _bool(cfg, "remove_empty", False)

    def apply(record: dict, _ctx: Any) -> None:
        value = _get(record, source)
        if value is MISSING or value is None:
            return
        if not isinstance(value, str):
            raise TransformFailed(f"field '{source}' is {_describe(value)}, not a string")
        parts = value.split(separator, maxsplit)
        if strip:
            parts = [p.strip() for p in parts]
        if remove_empty:
            parts = [p for p in parts if p]
        if into:
            _set_all(record, [(f, parts[i] if i < len(parts) else None) for i, f in enumerate(into)])
        else:
            _set_all(record, [(dest, parts)])

    touched = {top_level(f) for f in into} if into else {top_level(dest)}
    return Step(apply, frozenset(touched), into[0] if into else dest)


def mask_text(value: str, *, keep_first: int = 0, keep_last: int = 4, char: str = "*") -> str:
    """Mask a value, keeping its length; a value too short to keep anything is masked whole."""
    if len(value) <= keep_first + keep_last:
        return char * len(value)
    end = len(value) - keep_last
    return value[:keep_first] + char * (end - keep_first) + value[end:]


def _mask(spec: dict, cfg: dict) -> Step:
    fields = _fields(spec, cfg)
    keep_first = _int(cfg, "keep_first", 0)
    keep_last = _int(cfg, "keep_last", 4)
    char = _string(cfg, "char", "*")
    if len(char) != 1:
        raise RuleError("transform.config.char", "must be a single character")

    def apply(record: dict, _ctx: Any) -> None:
        updates = []
        for f in fields:
            value = _get(record, f)
            if value is MISSING or value is None:
                continue
            text = _text(value, f"field '{f}'")
            updates.append((f, mask_text(text, keep_first=keep_first, keep_last=keep_last, char=char)))
        _set_all(record, updates)

    return Step(apply, frozenset(top_level(f) for f in fields), fields[0])


def _hash(spec: dict, cfg: dict) -> Step:
    fields = _fields(spec, cfg)
    algorithm = _choice(cfg, "algorithm", HASH_ALGORITHMS, "sha256")
    salt_ref = cfg.get("salt_ref")
    if salt_ref is not None and not isinstance(salt_ref, str):
        raise RuleError("transform.config.salt_ref", "must be a secret reference (vault:, env: or file:)")
    prefix = _string(cfg, "prefix", "")
    salt: dict[str, bytes] = {}

    def key() -> bytes | None:
        if salt_ref is None:
            return None
        if "value" not in salt:
            from configuration.secrets import SecretError, resolve_secret

            try:
                salt["value"] = resolve_secret(salt_ref).encode()
            except SecretError as exc:
                raise TransformFailed(f"hash salt unavailable: {exc}") from exc
        return salt["value"]

    def apply(record: dict, _ctx: Any) -> None:
        updates = []
        secret = key()
        for f in fields:
            value = _get(record, f)
            if value is MISSING or value is None:
                continue
            data = (value if isinstance(value, str) else _json_text(value, sort=True)).encode()
            digest = (hmac.new(secret, data, algorithm).hexdigest() if secret is not None
                      else hashlib.new(algorithm, data).hexdigest())
            updates.append((f, prefix + digest))
        _set_all(record, updates)

    return Step(apply, frozenset(top_level(f) for f in fields), fields[0])


def _drop(spec: dict, cfg: dict) -> Step:
    if "reason" in cfg:
        _string(cfg, "reason")
    return Step(lambda record, ctx: None, frozenset(), None, drops=True)


def _enrich(spec: dict, cfg: dict) -> Step:
    source = cfg.get("source")
    if not isinstance(source, str) or not source:
        raise RuleError("transform.config.source", "is required (an enrichment_id of beta/enrichment/)")
    key_field = _path(cfg, "key_field", fallback=_match_field(spec))
    target = _path(cfg, "target", required=False)
    raw_fields = cfg.get("fields")
    if isinstance(raw_fields, list) and raw_fields and all(isinstance(f, str) and f for f in raw_fields):
        mapping = {f: f"{target}.{f}" if target else f for f in raw_fields}
    elif isinstance(raw_fields, dict) and raw_fields:
        mapping = {}
        for src, dest in raw_fields.items():
            try:
                mapping[str(src)] = path_check(f"{target}.{dest}" if target else dest)
            except PathError as exc:
                raise RuleError(f"transform.config.fields.{src}", str(exc)) from exc
    else:
        raise RuleError("transform.config.fields",
                        "is required: a list of the source's fields to merge, or a mapping {source field: record field}")
    for dest in mapping.values():
        try:
            path_check(dest)
        except PathError as exc:
            raise RuleError("transform.config.fields", str(exc)) from exc
    on_missing = _choice(cfg, "on_missing", ("ignore", "fail"), "ignore")
    overwrite = _bool(cfg, "overwrite", True)

    def record_key(record: dict) -> str | None:
        try:
            value = strict_get(record, key_field)
        except PathBlocked:
            return None
        if value is MISSING or value is None or isinstance(value, (dict, list)):
            return None
        return "true" if value is True else "false" if value is False else str(value)

    def prepare(records: list[dict], enrichment: Any) -> Any:
        if enrichment is None:
            return {"error": "no enrichment sources are available here"}
        keys = [k for k in (record_key(r) for r in records) if k is not None]
        return enrichment.lookup(source, keys)

    def apply(record: dict, found: Any) -> None:
        value = _get(record, key_field)
        if value is MISSING or value is None:
            return
        key = record_key(record)
        if key is None:
            raise TransformFailed(f"key field '{key_field}' is {_describe(value)}, not a value to look up")
        if isinstance(found, dict) and "error" in found:
            raise TransformFailed(f"enrichment source '{source}': {found['error']}")
        result = found.get(key)
        if result is None:
            raise TransformFailed(f"enrichment source '{source}': no answer for key {_shown(key)}")
        if result.error:
            raise TransformFailed(f"enrichment source '{source}' failed for key {_shown(key)}: {result.error}")
        if result.row is None:
            if on_missing == "fail":
                raise TransformFailed(f"key {_shown(key)} not found in enrichment source '{source}'")
            return
        updates = []
        for src, dest in mapping.items():
            if src not in result.row:
                continue
            if not overwrite and _get(record, dest) not in (MISSING, None):
                continue
            updates.append((dest, copy.deepcopy(result.row[src])))
        _set_all(record, updates)

    return Step(apply, frozenset(top_level(d) for d in mapping.values()), next(iter(mapping.values())),
                prepare=prepare, enrichment_source=source)


TRANSFORM_TYPES: dict[str, Callable[[dict, dict], Step]] = {
    "regex_replace": _regex_replace,
    "set": _set,
    "default": _default,
    "rename": _rename,
    "copy": _copy,
    "remove": _remove,
    "case": _case,
    "trim": _trim,
    "cast": _cast,
    "map": _map,
    "concat": _concat,
    "split": _split,
    "mask": _mask,
    "hash": _hash,
    "enrich": _enrich,
    "drop": _drop,
}


# --- rules --------------------------------------------------------------------------------------

@dataclass
class CompiledRule:
    rule_id: str
    priority: int
    kind: str
    matches: Callable[[dict], bool]
    step: Step
    on_failure: str
    default_value: Any = None
    default_field: str | None = None
    emit: bool = True
    spec: dict = field(default_factory=dict)

    @property
    def apply(self) -> Callable[[dict], None]:
        """Apply to one record without batch context (kept for callers that transform one record)."""
        return lambda record: self.step.apply(record, None)


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
    except RuleError:
        raise
    except ConditionError as exc:
        raise RuleError(exc.field, exc.reason) from exc
    on_failure = spec.get("on_failure", "skip")
    if on_failure not in ON_FAILURE:
        raise RuleError("on_failure", f"must be one of {', '.join(ON_FAILURE)}")
    priority = spec.get("priority", 1000)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise RuleError("priority", "must be an integer")
    metrics = spec.get("metrics") or {}
    emit = metrics.get("emit", True) if isinstance(metrics, dict) else True
    step = TRANSFORM_TYPES[kind](spec, cfg)
    default_field = None
    if on_failure == "default":
        if "default_value" not in spec:
            raise RuleError("default_value", "is required when on_failure is default")
        if step.drops:
            raise RuleError("on_failure", "a drop rule cannot fail, so 'default' does not apply")
        default_field = step.target
        if default_field is None:
            raise RuleError("on_failure", f"'default' needs a target field, which a {kind} rule does not have")
    return CompiledRule(
        rule_id=rule_id, priority=priority, kind=kind, matches=matches, step=step, on_failure=on_failure,
        default_value=spec.get("default_value"), default_field=default_field, emit=bool(emit), spec=spec,
    )


@dataclass
class RuleStats:
    executions: int = 0
    matches: int = 0
    failures: int = 0
    dropped: int = 0
    seconds: float = 0.0


@dataclass
class RuleFailure:
    rule_id: str
    reason: str
    action: str  # skip | fail | default


@dataclass
class Outcome:
    data: Any
    failed_rule: str | None = None
    reason: str = ""
    dropped_rule: str | None = None
    matched_rules: list[str] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    rules: dict[str, RuleStats]
    enrichment: dict[str, Any] = field(default_factory=dict)  # source id -> LookupStats


def _snapshot(data: dict, keys: frozenset[str]) -> list[tuple[str, bool, Any]]:
    return [(k, k in data, copy.deepcopy(data[k]) if k in data else None) for k in keys]


def _restore(data: dict, snapshot: list[tuple[str, bool, Any]]) -> None:
    for key, present, value in snapshot:
        if present:
            data[key] = value
        else:
            data.pop(key, None)


class RuleSet:
    """Enabled rules in priority order, applied to a batch rule after rule."""

    def __init__(self, specs: list[dict], *, enrichment: Any = None):
        rules = [compile_rule(s) for s in specs if s.get("enabled", True)]
        self.rules = sorted(rules, key=lambda r: (r.priority, r.rule_id))
        self.enrichment = enrichment

    def apply(self, record: Any) -> Outcome:
        return self.apply_batch([record]).outcomes[0]

    def apply_batch(self, records: list[Any]) -> BatchResult:
        # Records are JSON: an orjson round trip copies them several times faster than deepcopy.
        outcomes = [Outcome(data=orjson.loads(orjson.dumps(r))) for r in records]
        live = []
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome.data, dict):
                live.append(i)
            else:
                outcome.failed_rule, outcome.reason = "-", "record is not a JSON object"
        stats: dict[str, RuleStats] = {}
        lookups: dict[str, Any] = {}
        for rule in self.rules:
            started = time.perf_counter()
            rule_stats = stats[rule.rule_id] = RuleStats(executions=len(live))
            matched = []
            for i in live:
                try:
                    ok = rule.matches(outcomes[i].data)
                except Exception as exc:  # a condition over odd data must not stop the batch
                    ok = False
                    rule_stats.failures += 1
                    outcomes[i].failures.append(RuleFailure(rule.rule_id, f"match failed: {type(exc).__name__}", "skip"))
                if ok:
                    matched.append(i)
            rule_stats.matches = len(matched)
            context = None
            if rule.step.prepare is not None and matched:
                try:
                    context = rule.step.prepare([outcomes[i].data for i in matched], self.enrichment)
                except Exception as exc:  # the lookup machinery itself failed: every matched record fails
                    context = {"error": f"lookup failed: {type(exc).__name__}: {exc}"[:500]}
                if rule.step.enrichment_source and hasattr(context, "stats"):
                    lookups.setdefault(rule.step.enrichment_source, []).append(context.stats)
            removed: set[int] = set()
            for i in matched:
                outcome = outcomes[i]
                outcome.matched_rules.append(rule.rule_id)
                if rule.step.drops:
                    outcome.dropped_rule = rule.rule_id
                    reason = (rule.spec.get("transform", {}).get("config") or {}).get("reason")
                    outcome.reason = f"dropped by rule {rule.rule_id}" + (f": {reason}" if reason else "")
                    rule_stats.dropped += 1
                    removed.add(i)
                    continue
                snapshot = _snapshot(outcome.data, rule.step.touches)
                try:
                    rule.step.apply(outcome.data, context)
                    continue
                except TransformFailed as exc:
                    reason = str(exc)
                except RecursionError:
                    reason = "record too deeply nested"
                except Exception as exc:  # an unforeseen case is a counted failure, not a lost batch
                    reason = f"unexpected {type(exc).__name__}: {exc}"[:500]
                _restore(outcome.data, snapshot)
                rule_stats.failures += 1
                outcome.failures.append(RuleFailure(rule.rule_id, reason, rule.on_failure))
                if rule.on_failure == "fail":
                    outcome.failed_rule = rule.rule_id
                    outcome.reason = f"rule {rule.rule_id}: {reason}"
                    removed.add(i)
                elif rule.on_failure == "default":
                    try:
                        strict_set(outcome.data, rule.default_field, copy.deepcopy(rule.default_value))
                    except PathBlocked as blocked:
                        outcome.failed_rule = rule.rule_id
                        outcome.reason = f"rule {rule.rule_id}: {reason}; default not applicable: {blocked}"
                        removed.add(i)
            if removed:
                live = [i for i in live if i not in removed]
            rule_stats.seconds = time.perf_counter() - started
        return BatchResult(outcomes=outcomes, rules=stats, enrichment=_merge_lookup_stats(lookups))

    def enrichment_sources(self) -> set[str]:
        return {r.step.enrichment_source for r in self.rules if r.step.enrichment_source}


def _merge_lookup_stats(lookups: dict[str, list]) -> dict[str, Any]:
    merged = {}
    for source, items in lookups.items():
        total = items[0].__class__()
        for item in items:
            total.merge(item)
        merged[source] = total
    return merged


def rule_results_counter(result: BatchResult) -> Counter:
    """Records matched / failed / dropped per rule id (for summaries)."""
    counts: Counter = Counter()
    for rule_id, s in result.rules.items():
        counts[(rule_id, "matches")] += s.matches
        counts[(rule_id, "failures")] += s.failures
        counts[(rule_id, "dropped")] += s.dropped
    return counts
