"""The checks behind configuration validation; each returns ConfigIssues, never raises.

Reasons never repeat a field's value: a mistyped secret must not end up in a log or an API answer.
"""
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import SchemaError as JsonSchemaError
from jsonschema.exceptions import ValidationError

from . import schemas
from .issues import DESTINATION, ENRICHMENT, QUALITY, ROUTING_RULE, SOURCE, TRANSFORM_RULE, ConfigIssue
from .secrets import is_reference

SOURCE_TYPES = ("rest_api", "http_push", "file")
DESTINATION_TYPES = ("postgresql", "http", "file")
HTTP_AUTH_REFS = {"none": (), "bearer": ("token_ref",), "basic": ("username_ref", "password_ref"),
                  "header": ("header_name", "header_value_ref")}
# Keys that hold a secret; given without the _ref suffix they would be in clear text.
SECRET_NAMES = ("password", "passwd", "secret", "token", "api_key", "apikey", "private_key", "passphrase",
                "credentials")
# Keys ending in _ref that name a file, not a secret.
NOT_SECRET_REFS = {"schema_ref"}
WEIGHT_TOLERANCE = 0.001

_VALIDATORS = {
    kind: Draft7Validator(schema)
    for kind, schema in (
        (SOURCE, schemas.SOURCE), (TRANSFORM_RULE, schemas.TRANSFORM_RULE), (QUALITY, schemas.QUALITY),
        (ENRICHMENT, schemas.ENRICHMENT), (DESTINATION, schemas.DESTINATION), (ROUTING_RULE, schemas.ROUTING_RULE),
    )
}
_JSON_TYPES = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number", type(None): "empty"}
_SCHEMA_TYPES = {"object": "a mapping", "array": "a list", "string": "a string", "boolean": "a boolean",
                 "integer": "an integer", "number": "a number", "null": "empty"}


def field_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- YAML ---------------------------------------------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that notes duplicated keys (plain YAML keeps the last one silently)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[tuple[str, int]] = []


def _mapping_noting_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen and key != "<<":
                loader.duplicates.append((str(key), key_node.start_mark.line + 1))
            seen.add(key)
        except TypeError:  # unhashable key; construct_mapping reports it
            pass
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_noting_duplicates)


def parse_yaml(name: str, text: str) -> tuple[dict | None, list[ConfigIssue]]:
    """The file's mapping, or None with the syntax error and its line."""
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else "(document)"
        column = f" (column {mark.column + 1})" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        return None, [ConfigIssue(name, where, f"YAML syntax error: {problem}{column}")]
    except yaml.YAMLError as exc:
        return None, [ConfigIssue(name, "(document)", f"YAML syntax error: {exc}")]
    finally:
        loader.dispose()
    issues = [ConfigIssue(name, key, f"duplicated key at line {line} (only one value can count)")
              for key, line in loader.duplicates]
    if data is None:
        return None, issues + [ConfigIssue(name, "", "file is empty; expected a mapping of fields")]
    if not isinstance(data, dict):
        return None, issues + [ConfigIssue(name, "", f"expected a mapping of fields, got {_JSON_TYPES.get(type(data), 'a value')}")]
    return data, issues


# --- structure (JSON Schema) --------------------------------------------------------------------

def _schema_error_issues(name: str, error: ValidationError) -> list[ConfigIssue]:
    path = list(error.absolute_path)
    kind, expected = error.validator, error.validator_value
    if kind == "required":
        match = re.match(r"^'(.*)' is a required property$", error.message)
        return [ConfigIssue(name, field_path([*path, match.group(1) if match else "?"]), "is required")]
    if kind == "additionalProperties":
        known = set(error.schema.get("properties") or {})
        extra = sorted(str(k) for k in error.instance if k not in known)
        allowed = ", ".join(sorted(known))
        return [ConfigIssue(name, field_path([*path, k]), f"unknown field (allowed: {allowed})") for k in extra]
    if kind == "type":
        wanted = " or ".join(_SCHEMA_TYPES.get(t, t) for t in (expected if isinstance(expected, list) else [expected]))
        reason = f"must be {wanted}, not {_JSON_TYPES.get(type(error.instance), 'this')}"
    elif kind == "enum":
        reason = f"must be one of: {', '.join(str(v) for v in expected)}"
    elif kind == "minimum":
        reason = f"must be at least {expected}"
    elif kind == "maximum":
        reason = f"must be at most {expected}"
    elif kind == "minLength":
        reason = "must not be empty" if expected == 1 else f"must have at least {expected} characters"
    elif kind == "maxLength":
        reason = f"must have at most {expected} characters"
    elif kind == "pattern" and expected == schemas._ID["pattern"]:
        reason = "may contain only letters, digits, '_' and '-'"
    elif kind == "pattern":
        reason = f"must match {expected}"
    else:
        reason = error.message
    return [ConfigIssue(name, field_path(path), reason)]


def check_structure(name: str, kind: str, spec: dict) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for error in sorted(_VALIDATORS[kind].iter_errors(spec), key=lambda e: list(map(str, e.absolute_path))):
        issues.extend(_schema_error_issues(name, error))
    return issues


# --- secrets ------------------------------------------------------------------------------------

def _is_secret_name(key: str) -> bool:
    lowered = key.lower()
    return any(lowered == s or lowered.endswith("_" + s) for s in SECRET_NAMES)


def check_secrets(name: str, spec: Any, path: tuple = ()) -> list[ConfigIssue]:
    """`*_ref` keys must hold vault:/env:/file: references; secret-named keys must not exist at all."""
    issues: list[ConfigIssue] = []
    items = spec.items() if isinstance(spec, dict) else enumerate(spec) if isinstance(spec, list) else []
    for key, value in items:
        where = (*path, key)
        if isinstance(key, str) and key.endswith("_ref") and key not in NOT_SECRET_REFS:
            if not is_reference(value):
                issues.append(ConfigIssue(name, field_path(where),
                                          "must be a secret reference (vault:secret/..., env:NAME or file:/path)"))
            continue
        if isinstance(key, str) and _is_secret_name(key) and value is not None and not isinstance(value, (dict, list)):
            issues.append(ConfigIssue(name, field_path(where),
                                      f"secret given in clear: use '{key}_ref' with a vault:, env: or file: reference"))
            continue
        issues.extend(check_secrets(name, value, where))
    return issues


# --- per kind -----------------------------------------------------------------------------------

SchemaRead = Callable[[str], "tuple[str, str] | ConfigIssue"]


def load_schema_file(shown: str, text: str, *, file: str | None = None, field: str = "") -> tuple[dict | None, list[ConfigIssue]]:
    """A JSON Schema file: valid JSON, a valid draft-7 schema, and compiling for record validation."""
    from ingestion.validation import SchemaError, compile_validator

    file = file or shown
    label = f"schema file '{shown}'" if file != shown else "schema"
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [ConfigIssue(file, field, f"{label} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")]
    if not isinstance(schema, dict):
        return None, [ConfigIssue(file, field, f"{label} must be a JSON object")]
    try:
        Draft7Validator.check_schema(schema)
    except JsonSchemaError as exc:
        where = field_path(exc.absolute_path) or "(top)"
        return None, [ConfigIssue(file, field, f"{label} is not a valid JSON Schema at {where}: {exc.message}")]
    try:
        compile_validator({"schema": schema})
    except SchemaError as exc:
        return None, [ConfigIssue(file, field, f"{label} does not compile: {exc}")]
    except Exception as exc:  # the compiler raises various types on odd schemas; the reason is what counts
        return None, [ConfigIssue(file, field, f"{label} does not compile: {type(exc).__name__}: {exc}")]
    return schema, []


# What each auth_type of a rest_api source needs in connection.auth_config (a name or a tuple of alternatives).
SOURCE_AUTH_NEEDS = {
    "none": (),
    "basic": (("username", "username_ref"), "password_ref"),
    "bearer": ("token_ref",),
    "api_key": ("api_key_ref",),
    "oauth2": ("token_url", "client_id_ref", "client_secret_ref"),
}


def _check_source_auth(name: str, spec: dict) -> list[ConfigIssue]:
    connection = spec.get("connection")
    if spec.get("source_type") != "rest_api" or not isinstance(connection, dict):
        return []
    auth_type = connection.get("auth_type") or "none"
    auth_config = connection.get("auth_config") if isinstance(connection.get("auth_config"), dict) else {}
    issues = []
    for need in SOURCE_AUTH_NEEDS.get(auth_type, ()):
        options = need if isinstance(need, tuple) else (need,)
        if not any(auth_config.get(o) for o in options):
            issues.append(ConfigIssue(name, f"connection.auth_config.{options[-1]}", f"is required for auth_type {auth_type}"))
    token_url = auth_config.get("token_url")
    if auth_type == "oauth2" and token_url and not str(token_url).startswith(("http://", "https://")):
        issues.append(ConfigIssue(name, "connection.auth_config.token_url", "must start with http:// or https://"))
    return issues


def _check_source(name: str, spec: dict, read_schema: SchemaRead) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    source_type = spec.get("source_type")
    if isinstance(source_type, str) and source_type not in SOURCE_TYPES:
        issues.append(ConfigIssue(name, "source_type",
                                  f"unknown source_type '{source_type}' (known: {', '.join(SOURCE_TYPES)})"))
    issues.extend(_check_source_auth(name, spec))
    validation = spec.get("validation")
    if not isinstance(validation, dict):
        return issues
    ref, inline = validation.get("schema_ref"), validation.get("schema")
    if ref is not None and inline is not None:
        issues.append(ConfigIssue(name, "validation.schema", "give schema_ref or an inline schema, not both"))
    elif isinstance(ref, str) and ref:
        found = read_schema(ref)
        if isinstance(found, ConfigIssue):
            issues.append(found)
        else:
            schema, problems = load_schema_file(found[0], found[1], file=name, field="validation.schema_ref")
            issues.extend(problems)
            if schema is not None:
                validation["schema"] = schema  # inlined: the applied version carries its schema
    elif isinstance(inline, dict):
        issues.extend(load_schema_file(name, json.dumps(inline), file=name, field="validation.schema")[1])
    return issues


def _check_transform_rule(name: str, spec: dict) -> list[ConfigIssue]:
    from transform.engine import RuleError, compile_rule

    try:
        compile_rule(spec)
    except RuleError as exc:
        return [ConfigIssue(name, exc.field, exc.reason)]
    return []


def _check_enrichment(name: str, spec: dict) -> list[ConfigIssue]:
    from transform.enrichment import enrichment_source_check

    return [ConfigIssue(name, f, reason) for f, reason in enrichment_source_check(spec)]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_quality(name: str, spec: dict) -> list[ConfigIssue]:
    scoring = spec.get("quality_scoring")
    if not isinstance(scoring, dict):
        return []
    issues: list[ConfigIssue] = []
    weights = scoring.get("weights")
    if isinstance(weights, dict):
        values = [_number(v) for v in weights.values()]
        if values and None not in values and abs(sum(values) - 1.0) > WEIGHT_TOLERANCE:
            issues.append(ConfigIssue(name, "quality_scoring.weights", f"must sum to 1.0 (they sum to {sum(values):g})"))
    from transform.quality import QualityConfigError, QualityScorer

    try:
        QualityScorer(spec)
    except QualityConfigError as exc:
        issues.append(ConfigIssue(name, exc.field, exc.reason))
    except (TypeError, ValueError, AttributeError):
        pass  # wrong types in weights or thresholds: the structure check has reported them
    thresholds = scoring.get("thresholds")
    if isinstance(thresholds, dict):
        reject, error, warn = (_number(thresholds.get(k)) for k in ("reject", "error", "warn"))
        if None not in (reject, error, warn) and not reject <= error <= warn:
            issues.append(ConfigIssue(name, "quality_scoring.thresholds",
                                      f"must be ordered reject <= error <= warn (got reject {reject:g}, "
                                      f"error {error:g}, warn {warn:g})"))
    return issues


def _check_destination(name: str, spec: dict) -> list[ConfigIssue]:
    connection = spec.get("connection")
    if not isinstance(connection, dict):
        return []
    kind = connection.get("type")
    if isinstance(kind, str) and kind not in DESTINATION_TYPES:
        return [ConfigIssue(name, "connection.type",
                            f"unknown destination type '{kind}' (known: {', '.join(DESTINATION_TYPES)})")]
    issues: list[ConfigIssue] = []
    if kind == "postgresql":
        fmt = spec.get("format") if isinstance(spec.get("format"), dict) else {}
        if not fmt.get("table"):
            issues.append(ConfigIssue(name, "format.table", "is required for a postgresql destination"))
        mapping = fmt.get("column_mapping") if isinstance(fmt.get("column_mapping"), dict) else {}
        if not mapping.get("record_id"):
            issues.append(ConfigIssue(name, "format.column_mapping.record_id",
                                      "is required for a postgresql destination (the column that makes delivery idempotent)"))
    if kind == "http":
        if not connection.get("url"):
            issues.append(ConfigIssue(name, "connection.url", "is required for an http destination"))
        elif not str(connection["url"]).startswith(("http://", "https://")):
            issues.append(ConfigIssue(name, "connection.url", "must start with http:// or https://"))
        auth = connection.get("auth_type", "none")
        if auth not in HTTP_AUTH_REFS:
            issues.append(ConfigIssue(name, "connection.auth_type", f"must be one of {', '.join(HTTP_AUTH_REFS)}"))
        for needed in HTTP_AUTH_REFS.get(auth, ()):
            if not connection.get(needed):
                issues.append(ConfigIssue(name, f"connection.{needed}", f"is required for auth_type {auth}"))
    if kind == "file":
        fmt = spec.get("format") if isinstance(spec.get("format"), dict) else {}
        if fmt.get("type", "jsonl") not in ("jsonl", "csv"):
            issues.append(ConfigIssue(name, "format.type", "must be jsonl or csv for a file destination"))
    return issues


def _check_routing_rule(name: str, spec: dict) -> list[ConfigIssue]:
    from delivery.routing import compile_route
    from transform.conditions import ConditionError

    try:
        compile_route(spec)
    except ConditionError as exc:
        return [ConfigIssue(name, exc.field, exc.reason)]
    return []


def check_item(name: str, kind: str, spec: dict, read_schema: SchemaRead) -> list[ConfigIssue]:
    """What structure cannot tell; for a source this also inlines its schema into the spec."""
    if kind == SOURCE:
        return _check_source(name, spec, read_schema)
    if kind == TRANSFORM_RULE:
        return _check_transform_rule(name, spec)
    if kind == QUALITY:
        return _check_quality(name, spec)
    if kind == ENRICHMENT:
        return _check_enrichment(name, spec)
    if kind == DESTINATION:
        return _check_destination(name, spec)
    if kind == ROUTING_RULE:
        return _check_routing_rule(name, spec)
    return []


# --- across files -------------------------------------------------------------------------------

def check_cross_file(items: list, id_fields: dict[str, str], known_destinations: set[str],
                     known_enrichment: set[str] = frozenset()) -> list[ConfigIssue]:
    """Ids unique per kind; one scoring file; routing rules name a destination that exists."""
    issues: list[ConfigIssue] = []
    first_seen: dict[tuple[str, str], str] = {}
    for item in items:
        key_field = id_fields.get(item.kind)
        value = item.spec.get(key_field) if key_field else None
        if not isinstance(value, str):
            continue
        where = first_seen.setdefault((item.kind, value), item.file)
        if where != item.file:
            issues.append(ConfigIssue(item.file, key_field, f"duplicate {key_field} '{value}' (also in {where})"))
    quality_files = [i.file for i in items if i.kind == QUALITY]
    for extra in quality_files[1:]:
        issues.append(ConfigIssue(extra, "quality_scoring", f"a second quality scoring file (also {quality_files[0]})"))
    enrichment_ids = set(known_enrichment) | {
        i.spec["enrichment_id"] for i in items if i.kind == ENRICHMENT and isinstance(i.spec.get("enrichment_id"), str)
    }
    for item in items:
        transform = item.spec.get("transform") if item.kind == TRANSFORM_RULE else None
        config = transform.get("config") if isinstance(transform, dict) and transform.get("type") == "enrich" else None
        wanted = config.get("source") if isinstance(config, dict) else None
        if isinstance(wanted, str) and wanted not in enrichment_ids:
            known = ", ".join(sorted(enrichment_ids)) or "none"
            issues.append(ConfigIssue(item.file, "transform.config.source",
                                      f"unknown enrichment source '{wanted}' (known: {known})"))
    destinations = known_destinations | {
        i.spec["destination_id"] for i in items if i.kind == DESTINATION and isinstance(i.spec.get("destination_id"), str)
    }
    for item in items:
        if item.kind != ROUTING_RULE:
            continue
        for field in ("destination", "alternate_destination"):
            target = item.spec.get(field)
            if isinstance(target, str) and target not in destinations:
                known = ", ".join(sorted(destinations)) or "none"
                issues.append(ConfigIssue(item.file, field, f"unknown destination '{target}' (known: {known})"))
    return issues
