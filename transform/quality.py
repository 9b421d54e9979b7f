"""Quality scoring from beta/quality/scoring.yaml (Runbook B.3).

score = sum(weight[d] * dimension_score[d]); each dimension in [0, 1].
completeness: 1 - penalty_per_missing * missing required fields.
timeliness: 1 - penalty_per_hour * hours beyond max_age_hours (age from the record's timestamp field).
consistency and conformance: 1.0 until their rules are configured (Module Beta issue).
"""
from dataclasses import dataclass
from datetime import datetime, timezone

from opsconsole.fields import MISSING, get_path

DIMENSIONS = ("completeness", "consistency", "conformance", "timeliness")


@dataclass
class Score:
    total: float
    dimensions: dict[str, float]
    level: str  # ok | warn | error | reject


def _parse_time(value) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


class QualityScorer:
    def __init__(self, spec: dict | None):
        qs = (spec or {}).get("quality_scoring", {})
        self.weights = {d: float(qs.get("weights", {}).get(d, 0.0)) for d in DIMENSIONS}
        thresholds = qs.get("thresholds", {})
        self.warn = float(thresholds.get("warn", 0.0))
        self.error = float(thresholds.get("error", 0.0))
        self.reject = float(thresholds.get("reject", 0.0))
        rules = qs.get("rules", {})
        completeness = rules.get("completeness", {})
        self.required = list(completeness.get("required_fields", []))
        self.penalty_missing = float(completeness.get("penalty_per_missing", 0.0))
        timeliness = rules.get("timeliness", {})
        self.time_field = timeliness.get("field", "timestamp")
        self.max_age_hours = float(timeliness.get("max_age_hours", 0.0))
        self.penalty_hour = float(timeliness.get("penalty_per_hour", 0.0))

    def score(self, record: dict, now: datetime) -> Score:
        dims = {d: 1.0 for d in DIMENSIONS}
        missing = sum(1 for f in self.required if get_path(record, f) in (MISSING, None, ""))
        dims["completeness"] = max(0.0, 1.0 - missing * self.penalty_missing)
        raw_time = get_path(record, self.time_field)
        if raw_time is not MISSING and raw_time is not None:
            stamp = _parse_time(raw_time)
            if stamp is None:
                dims["timeliness"] = 0.0
            else:
                age_hours = (now - stamp).total_seconds() / 3600.0
                over = max(0.0, age_hours - self.max_age_hours)
                dims["timeliness"] = max(0.0, 1.0 - over * self.penalty_hour)
        total_weight = sum(self.weights.values())
        total = sum(self.weights[d] * dims[d] for d in DIMENSIONS) / total_weight if total_weight else 1.0
        total = round(total, 4)
        if total < self.reject:
            level = "reject"
        elif total < self.error:
            level = "error"
        elif total < self.warn:
            level = "warn"
        else:
            level = "ok"
        return Score(total=total, dimensions=dims, level=level)
