"""What configuration problems look like, and the kinds of configuration files."""
from dataclasses import dataclass

SOURCE = "source"
TRANSFORM_RULE = "transform_rule"
QUALITY = "quality"
ENRICHMENT = "enrichment"
DESTINATION = "destination"
ROUTING_RULE = "routing_rule"
SCHEMA = "schema"

# The field naming each item; ids are unique per kind across files.
ID_FIELDS = {
    SOURCE: "source_id",
    TRANSFORM_RULE: "rule_id",
    ENRICHMENT: "enrichment_id",
    DESTINATION: "destination_id",
    ROUTING_RULE: "rule_id",
}


@dataclass(frozen=True)
class ConfigIssue:
    """One problem the operator must fix: which file, which field (dotted path), why."""

    file: str
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.file}: {self.field or '(document)'}: {self.reason}"
