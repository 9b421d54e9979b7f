"""The structure of each kind of configuration file, as JSON Schema (draft 7), with the manual's field names.

Only structure lives here (types, required fields, ranges). What needs more than structure (a
rule that compiles, a destination that exists, weights that sum to 1) is in checks.py. Unknown
extra fields are allowed: operators keep notes (`metrics`, `authorization`, ...) beside the ones
the pipeline reads.
"""
from typing import Any

_ID = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9_-]+$"}
_TEXT = {"type": "string"}
_BOOL = {"type": "boolean"}
_POSITIVE_INT = {"type": "integer", "minimum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_FIELD_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}
_UNIT = {"type": "number", "minimum": 0, "maximum": 1}

SOURCE: dict[str, Any] = {
    "type": "object",
    "required": ["source_id", "source_type"],
    "properties": {
        "source_id": _ID,
        "source_type": _TEXT,
        "enabled": _BOOL,
        "data_classification": {"type": "string", "enum": ["public", "internal", "confidential", "restricted"]},
        "name": _TEXT,
        "description": _TEXT,
        "connection": {
            "type": "object",
            "properties": {
                "endpoint": {"type": "string", "pattern": "^https?://"},
                "path": {"type": "string", "minLength": 1},
                "auth_type": {"type": "string", "enum": ["none", "basic", "bearer", "api_key", "oauth2"]},
                "auth_config": {"type": "object"},
                "timeout_ms": _POSITIVE_INT,
                "retry_count": _COUNT,
                "retry_backoff_ms": _POSITIVE_INT,
            },
        },
        "polling": {
            "type": "object",
            "properties": {
                "interval_seconds": _POSITIVE_INT,
                "batch_size": _POSITIVE_INT,
                # Incremental cursor (ingestion/polling.py): query parameters, id field, next-page link.
                "max_pages": _POSITIVE_INT,
                "page_size_param": {"type": ["string", "null"]},
                "cursor_param": {"type": ["string", "null"]},
                "id_field": {"type": "string", "minLength": 1},
                "next_link_path": {"type": "string", "minLength": 1},
            },
        },
        "parsing": {
            "type": "object",
            "properties": {
                "format": {"type": "string", "enum": ["json", "jsonl", "csv"]},
                "record_path": _TEXT,
                "timestamp_field": _TEXT,
            },
        },
        "validation": {
            "type": "object",
            "properties": {
                "required_fields": _FIELD_LIST,
                "schema_ref": {"type": "string", "minLength": 1},
                "schema": {"type": "object"},
            },
        },
    },
    "allOf": [
        {
            "if": {"properties": {"source_type": {"const": "rest_api"}}, "required": ["source_type"]},
            "then": {
                "required": ["connection", "polling"],
                "properties": {"connection": {"required": ["endpoint"]}},
            },
        },
        {
            "if": {"properties": {"source_type": {"const": "file"}}, "required": ["source_type"]},
            "then": {"required": ["connection"], "properties": {"connection": {"required": ["path"]}}},
        },
    ],
}

TRANSFORM_RULE: dict[str, Any] = {
    "type": "object",
    "required": ["rule_id", "transform"],
    "properties": {
        "rule_id": _ID,
        "name": _TEXT,
        "description": _TEXT,
        "enabled": _BOOL,
        "priority": {"type": "integer"},
        "match": {"type": "object"},
        "transform": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"type": "string"}, "config": {"type": "object"}},
        },
        "on_failure": {"type": "string"},
        "metrics": {"type": "object", "properties": {"emit": _BOOL, "tags": {"type": "object"}}},
    },
}

_DIMENSIONS = ["completeness", "consistency", "conformance", "timeliness"]

QUALITY: dict[str, Any] = {
    "type": "object",
    "required": ["quality_scoring"],
    "properties": {
        "quality_scoring": {
            "type": "object",
            "required": ["weights", "thresholds"],
            "properties": {
                "weights": {
                    "type": "object",
                    "required": _DIMENSIONS,
                    "properties": {d: _UNIT for d in _DIMENSIONS},
                    "additionalProperties": False,
                },
                "thresholds": {
                    "type": "object",
                    "required": ["warn", "error", "reject"],
                    "properties": {"warn": _UNIT, "error": _UNIT, "reject": _UNIT},
                    "additionalProperties": False,
                },
                "rules": {
                    "type": "object",
                    "properties": {
                        "completeness": {
                            "type": "object",
                            "properties": {
                                "required_fields": _FIELD_LIST,
                                "penalty_per_missing": {"type": "number", "minimum": 0},
                            },
                        },
                        "timeliness": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string", "minLength": 1},
                                "max_age_hours": {"type": "number", "minimum": 0},
                                "penalty_per_hour": {"type": "number", "minimum": 0},
                            },
                        },
                    },
                },
            },
        },
    },
}

ENRICHMENT: dict[str, Any] = {
    "type": "object",
    "required": ["enrichment_id"],
    "properties": {
        "enrichment_id": _ID,
        "enabled": _BOOL,
        "description": _TEXT,
        "type": _TEXT,
        "connection": {"type": "object"},
        "cache": {
            "type": "object",
            "properties": {"ttl_seconds": _POSITIVE_INT, "max_entries": _POSITIVE_INT, "stale_fallback": _BOOL},
        },
    },
}

DESTINATION: dict[str, Any] = {
    "type": "object",
    "required": ["destination_id", "connection"],
    "properties": {
        "destination_id": _ID,
        "destination_type": _TEXT,
        "enabled": _BOOL,
        "description": _TEXT,
        "connection": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"type": "string"},
                "host": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "database": {"type": "string", "minLength": 1},
                "ssl_mode": {
                    "type": "string",
                    "enum": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
                },
                "pool_size": _POSITIVE_INT,
                "path": {"type": "string", "minLength": 1},
                "url": {"type": "string", "minLength": 1},
                "auth_type": {"type": "string"},
                "header_name": {"type": "string", "minLength": 1},
            },
        },
        "circuit_breaker": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "failure_threshold": _POSITIVE_INT,
                "failure_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "min_requests": _POSITIVE_INT,
                "window_seconds": {"type": "number", "exclusiveMinimum": 0},
                "cooldown_seconds": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "delivery": {
            "type": "object",
            "properties": {
                "batch_size": _POSITIVE_INT,
                "timeout_ms": _POSITIVE_INT,
                "retry_count": _COUNT,
                "retry_delay_ms": _COUNT,
            },
        },
        "format": {
            "type": "object",
            "properties": {
                "type": _TEXT,
                "table": {"type": "string", "minLength": 1},
                "column_mapping": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
            },
        },
        "authorization": {
            "type": "object",
            "properties": {
                "data_classification": {"type": "string", "enum": ["public", "internal", "confidential", "restricted"]},
                "allowed_sources": _FIELD_LIST,
            },
        },
    },
    "allOf": [
        {
            "if": {
                "properties": {"connection": {"properties": {"type": {"const": "postgresql"}}, "required": ["type"]}},
                "required": ["connection"],
            },
            "then": {"properties": {"connection": {"required": ["host", "database"]}}},
        },
    ],
}

ROUTING_RULE: dict[str, Any] = {
    "type": "object",
    "required": ["rule_id", "destination"],
    "properties": {
        "rule_id": _ID,
        "enabled": _BOOL,
        "priority": {"type": "integer"},
        "description": _TEXT,
        "match": {"type": "object"},
        "destination": {"type": "string", "minLength": 1},
        "alternate_destination": {"type": "string", "minLength": 1},
    },
}
