"""Record validation for a source: its required_fields and JSON Schema, compiled once per config version."""
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastjsonschema

from opsconsole.fields import MISSING, get_path


@dataclass
class Failure:
    error_code: str
    field: str
    message: str


Validator = Callable[[Any], Failure | None]


class SchemaError(ValueError):
    pass


def compile_validator(spec: dict) -> Validator:
    """spec is the source's `validation` mapping; its `schema` (inlined at reload) is optional."""
    validation = spec or {}
    required = list(validation.get("required_fields") or [])
    schema = validation.get("schema")
    check_schema = None
    if schema is not None:
        try:
            check_schema = fastjsonschema.compile(schema)
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise SchemaError(f"schema does not compile: {exc}") from exc

    def validate(record: Any) -> Failure | None:
        if not isinstance(record, dict):
            return Failure("NOT_AN_OBJECT", "", f"record is a {type(record).__name__}, not a JSON object")
        for name in required:
            if get_path(record, name) in (MISSING, None):
                return Failure("MISSING_REQUIRED_FIELD", name, f"required field '{name}' is missing")
        if check_schema is not None:
            try:
                check_schema(record)
            except fastjsonschema.JsonSchemaValueException as exc:
                path = exc.name[5:] if exc.name.startswith("data.") else ("" if exc.name == "data" else exc.name)
                rule = (exc.rule or "invalid").upper().replace("-", "_")
                return Failure(f"SCHEMA_{rule}", path, exc.message)
        return None

    return validate
