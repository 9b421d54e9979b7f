"""validate_config (beta-rule-validator, beta-config-validator) on Beta files: every error as file: field: reason."""
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from configuration.services import ConfigInvalid
from tests.conftest import DEFAULT_SCORING, PUSH_SOURCE

pytestmark = pytest.mark.django_db


def validate(*paths) -> str:
    from io import StringIO

    out = StringIO()
    try:
        call_command("validate_config", *map(str, paths), stdout=out)
    except CommandError as exc:
        return out.getvalue() + f"\nexit: {exc}"
    return out.getvalue()


def write(path: Path, spec) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
    return path


def test_manual_rule_file_validates(tmp_path):
    rule = write(tmp_path / "new_rule.yaml", (Path(__file__).parent / "manual_rule.yaml").read_text())
    assert validate(rule).strip() == "OK: 1 files valid"


@pytest.mark.parametrize("transform,line", [
    ({"type": "regex_replace", "config": {"field": "p", "pattern": "([0-9]"}},
     "transform.config.pattern: regex does not compile: missing ), unterminated subpattern at position 0"),
    ({"type": "cast", "config": {"field": "a", "to": "money"}},
     "transform.config.to: must be one of int, float, decimal, bool, string, date, datetime (got 'money')"),
    ({"type": "set", "config": {"field": "items[0].sku", "value": 1}},
     "transform.config.field: 'items[0].sku': list indexes are not supported in field paths"),
    ({"type": "split", "config": {"field": "a", "separator": ""}}, "transform.config.separator: must not be empty"),
    ({"type": "enrich", "config": {"source": "crm", "key_field": "id", "fields": ["x"]}},
     "transform.config.source: unknown enrichment source 'crm' (known: merchant_categories)"),  # the shipped tree's
])
def test_invalid_rule_files_report_file_field_reason(tmp_path, transform, line):
    rule = write(tmp_path / "bad_rule.yaml", {"rule_id": "BAD", "transform": transform})
    output = validate(rule)
    assert f"{rule}: {line}" in output and "exit: 1 error" in output


def test_scoring_rules_and_enrichment_files_validate(tmp_path):
    scoring = yaml.safe_load(yaml.safe_dump(DEFAULT_SCORING))
    scoring["quality_scoring"]["rules"]["conformance"] = {"formats": [{"field": "email", "format": "emial"}]}
    scoring["quality_scoring"]["rules"]["consistency"] = {"rules": [{"name": "x", "field": "a", "compare": "after",
                                                                      "other_field": "b"}]}
    bad_scoring = write(tmp_path / "beta/quality/scoring.yaml", scoring)
    bad_source = write(tmp_path / "beta/enrichment/crm.yaml",
                       {"enrichment_id": "crm", "type": "postgresql", "connection": {"host": "db"},
                        "cache": {"ttl_seconds": 60}})
    output = validate(bad_scoring, bad_source)
    assert f"{bad_scoring}: quality_scoring.rules.consistency.rules[0].compare: must be one of eq, ne, lt, lte, gt, gte" \
        in output
    assert f"{bad_source}: connection.database: is required for a postgresql source" in output
    fixed = scoring
    fixed["quality_scoring"]["rules"]["consistency"]["rules"][0]["compare"] = "gte"
    write(bad_scoring, fixed)
    assert f"{bad_scoring}: quality_scoring.rules.conformance.formats[0].format: unknown format 'emial'" in validate(bad_scoring)


def test_reload_applies_enrichment_sources_all_or_nothing(apply_beta, countries_csv, tmp_path):
    from transform.models import EnrichmentSource

    from .conftest import csv_source, enrich_rule

    apply_beta(sources=[PUSH_SOURCE], enrichment=[csv_source(countries_csv)],
               rules=[enrich_rule("countries", "country", ["name"])])
    assert list(EnrichmentSource.objects.values_list("enrichment_id", "source_type")) == [("countries", "csv")]
    with pytest.raises(ConfigInvalid) as caught:
        apply_beta(sources=[PUSH_SOURCE], enrichment=[csv_source(tmp_path / "missing.csv")],
                   rules=[enrich_rule("nowhere", "country", ["name"])])
    errors = {(e["field"], e["reason"].split(":")[0]) for e in caught.value.errors}
    assert ("connection.path", "file not found") in errors
    assert ("transform.config.source", "unknown enrichment source 'nowhere' (known") in errors
    assert EnrichmentSource.objects.count() == 1  # nothing applied
