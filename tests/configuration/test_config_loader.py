"""Validation reports every error with file, field and reason (DESIGN.md §4)."""
from pathlib import Path

import pytest

from configuration.loader import load_files, load_tree
from configuration.services import config_validate


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def issues_of(root: Path) -> list[tuple[str, str, str]]:
    _, issues = load_tree(root)
    return [(i.file, i.field, i.reason) for i in issues]


def only(root: Path) -> tuple[str, str, str]:
    found = issues_of(root)
    assert len(found) == 1, found
    return found[0]


SOURCE = "alpha/sources/api_source_1.yaml"
RULE = "beta/transforms/rules/TRX_042_NORMALIZE_PHONE.yaml"
SCORING = "beta/quality/scoring.yaml"
WAREHOUSE = "gamma/destinations/analytics_warehouse.yaml"
ROUTE = "gamma/routing/rules/ROUTE_TO_ARCHIVE.yaml"


def test_shipped_tree_is_clean(tree):
    assert issues_of(tree) == []


def test_yaml_syntax_error_names_the_line(tree):
    write(tree, SOURCE, "source_id: api_source_1\nsource_type: http_push\nvalidation: [unclosed\n")
    file, field, reason = only(tree)
    assert (file, field) == (SOURCE, "line 4") and reason.startswith("YAML syntax error")


def test_duplicated_yaml_key(tree):
    write(tree, SOURCE, "source_id: api_source_1\nsource_type: http_push\nenabled: true\nenabled: false\n")
    assert only(tree) == (SOURCE, "enabled", "duplicated key at line 4 (only one value can count)")


@pytest.mark.parametrize("text, expected", [
    ("", "file is empty; expected a mapping of fields"),
    ("- a\n- b\n", "expected a mapping of fields, got a list"),
])
def test_file_that_is_not_a_mapping(tree, text, expected):
    write(tree, SOURCE, text)
    assert only(tree) == (SOURCE, "", expected)


def test_missing_and_ill_typed_fields_are_all_reported(tree):
    write(tree, SOURCE, "source_type: http_push\nenabled: 'yes'\nvalidation:\n  required_fields: id\n")
    assert set(issues_of(tree)) == {
        (SOURCE, "source_id", "is required"),
        (SOURCE, "enabled", "must be a boolean, not a string"),
        (SOURCE, "validation.required_fields", "must be a list, not a string"),
    }


def test_unknown_source_type(tree):
    write(tree, SOURCE, "source_id: api_source_1\nsource_type: kafka\n")
    assert only(tree) == (SOURCE, "source_type", "unknown source_type 'kafka' (known: rest_api, http_push, file)")


def test_type_specific_required_fields(tree):
    write(tree, "alpha/sources/file_source_1.yaml", "source_id: file_source_1\nsource_type: file\nconnection: {}\n")
    assert only(tree) == ("alpha/sources/file_source_1.yaml", "connection.path", "is required")


def test_duplicated_ids_across_files(tree):
    write(tree, "alpha/sources/copy.yaml", (tree / SOURCE).read_text())
    write(tree, "gamma/routing/rules/again.yaml", (tree / ROUTE).read_text())
    assert set(issues_of(tree)) == {
        ("alpha/sources/copy.yaml", "source_id", f"duplicate source_id 'api_source_1' (also in {SOURCE})"),
        ("gamma/routing/rules/again.yaml", "rule_id", f"duplicate rule_id 'ROUTE_TO_ARCHIVE' (also in {ROUTE})"),
    }


def test_routing_rule_to_unknown_destination(tree):
    write(tree, ROUTE, "rule_id: ROUTE_TO_ARCHIVE\ndestination: nowhere\n")
    assert only(tree) == (ROUTE, "destination", "unknown destination 'nowhere' (known: analytics_warehouse, local_archive)")


def test_schema_ref_that_does_not_exist(tree):
    (tree / "alpha/schemas/api_source_1.json").unlink()
    file, field, reason = only(tree)
    assert (file, field) == (SOURCE, "validation.schema_ref")
    assert reason == "schema file 'schemas/api_source_1.json' not found (looked under alpha/ and the tree root)"


def test_schema_ref_outside_the_tree_is_refused(tree):
    write(tree, SOURCE, (tree / SOURCE).read_text().replace("schemas/api_source_1.json", "../../etc/passwd"))
    assert only(tree)[1] == "validation.schema_ref"


def test_schema_ref_that_is_not_json(tree):
    write(tree, "alpha/schemas/api_source_1.json", '{"type": "object",\n "required": [}')
    file, field, reason = only(tree)
    assert (file, field) == (SOURCE, "validation.schema_ref")
    assert reason.startswith("schema file 'alpha/schemas/api_source_1.json' is not valid JSON") and "line 2" in reason


@pytest.mark.parametrize("schema", ['{"type": "thing"}', '{"required": "id"}', '{"properties": 5}'])
def test_schema_ref_that_does_not_compile(tree, schema):
    write(tree, "alpha/schemas/api_source_1.json", schema)
    file, field, reason = only(tree)
    assert (file, field) == (SOURCE, "validation.schema_ref")
    assert "is not a valid JSON Schema" in reason or "does not compile" in reason


def test_schema_found_at_tree_root_and_inlined(tree):
    (tree / "alpha/schemas/api_source_1.json").rename(tree / "shared.json")
    write(tree, SOURCE, (tree / SOURCE).read_text().replace("schemas/api_source_1.json", "shared.json"))
    loaded, issues = load_tree(tree)
    assert issues == []
    assert "shared.json" in loaded.files
    spec = next(i.spec for i in loaded.items if i.file == SOURCE)
    assert spec["validation"]["schema"]["required"] == ["id", "timestamp", "payload"]


def test_rule_that_does_not_compile(tree):
    write(tree, RULE, (tree / RULE).read_text().replace('pattern: "^', 'pattern: "(^'))
    file, field, reason = only(tree)
    assert (file, field) == (RULE, "transform.config.pattern") and reason.startswith("regex does not compile")


def test_unknown_rule_type(tree):
    write(tree, RULE, (tree / RULE).read_text().replace("type: regex_replace", "type: uppercase"))
    file, field, reason = only(tree)
    assert (file, field) == (RULE, "transform.type") and reason.startswith("unknown rule type 'uppercase'")


def test_rule_with_bad_condition(tree):
    write(tree, RULE, (tree / RULE).read_text().replace("condition: exists", "condition: resembles"))
    assert only(tree)[:2] == (RULE, "match.condition")


def test_routing_rule_that_does_not_compile(tree):
    write(tree, ROUTE, "rule_id: ROUTE_TO_ARCHIVE\ndestination: local_archive\nmatch:\n  quality_score:\n    about: 0.5\n")
    assert only(tree) == (ROUTE, "match.quality_score.about", "unknown comparison (use gte, gt, lte, lt)")


def test_unknown_destination_type(tree):
    write(tree, "gamma/destinations/local_archive.yaml", "destination_id: local_archive\nconnection:\n  type: s3\n")
    assert only(tree) == ("gamma/destinations/local_archive.yaml", "connection.type",
                          "unknown destination type 's3' (known: postgresql, http, file)")


def test_postgresql_destination_needs_table_and_record_id(tree):
    text = (tree / WAREHOUSE).read_text().replace("  table: pipeline_events\n", "").replace("    record_id: event_id\n", "")
    write(tree, WAREHOUSE, text)
    assert set(issues_of(tree)) == {
        (WAREHOUSE, "format.table", "is required for a postgresql destination"),
        (WAREHOUSE, "format.column_mapping.record_id",
         "is required for a postgresql destination (the column that makes delivery idempotent)"),
    }


def test_secrets_in_clear_are_errors_and_never_echoed(tree):
    text = (tree / WAREHOUSE).read_text().replace("password_ref: env:ANALYTICS_DB_PASSWORD", "password: hunter2-secret")
    text = text.replace("username_ref: env:ANALYTICS_DB_USER", "username_ref: pipeline_user")
    write(tree, WAREHOUSE, text)
    write(tree, "alpha/sources/new_api_source.yaml", (tree / "alpha/sources/new_api_source.yaml").read_text().replace(
        "    client_id_ref: env:NEW_API_SOURCE_CLIENT_ID", "    client_id_ref: env:X\n    api_token: abc123"))
    found = set(issues_of(tree))
    assert found == {
        (WAREHOUSE, "connection.password", "secret given in clear: use 'password_ref' with a vault:, env: or file: reference"),
        (WAREHOUSE, "connection.username_ref", "must be a secret reference (vault:secret/..., env:NAME or file:/path)"),
        ("alpha/sources/new_api_source.yaml", "connection.auth_config.api_token",
         "secret given in clear: use 'api_token_ref' with a vault:, env: or file: reference"),
    }
    assert not any("hunter2" in r or "abc123" in r or "pipeline_user" in r for _, _, r in found)


def test_scoring_weights_must_sum_to_one(tree):
    write(tree, SCORING, (tree / SCORING).read_text().replace("timeliness: 0.20", "timeliness: 0.30"))
    assert only(tree) == (SCORING, "quality_scoring.weights", "must sum to 1.0 (they sum to 1.1)")


def test_scoring_weights_within_tolerance_pass(tree):
    write(tree, SCORING, (tree / SCORING).read_text().replace("timeliness: 0.20", "timeliness: 0.2009"))
    assert issues_of(tree) == []


def test_scoring_thresholds_must_be_ordered(tree):
    write(tree, SCORING, (tree / SCORING).read_text().replace("error: 0.5", "error: 0.8"))
    assert only(tree) == (SCORING, "quality_scoring.thresholds",
                          "must be ordered reject <= error <= warn (got reject 0.3, error 0.8, warn 0.7)")


def test_every_error_of_every_file_is_collected(tree):
    write(tree, SOURCE, "source_id: api_source_1\nsource_type: kafka\n")
    write(tree, RULE, (tree / RULE).read_text().replace("type: regex_replace", "type: uppercase"))
    write(tree, SCORING, (tree / SCORING).read_text().replace("timeliness: 0.20", "timeliness: 0.30"))
    write(tree, ROUTE, "rule_id: ROUTE_TO_ARCHIVE\ndestination: nowhere\n")
    write(tree, "gamma/destinations/local_archive.yaml", "destination_id: local_archive\nconnection:\n  type: s3\n")
    assert {f for f, _, _ in issues_of(tree)} == {SOURCE, RULE, SCORING, ROUTE, "gamma/destinations/local_archive.yaml"}


def test_missing_tree(tmp_path):
    _, issues = config_validate(config_dir=tmp_path / "nope")
    assert [i.reason for i in issues] == ["configuration directory does not exist"]


def test_stored_files_load_like_the_tree(tree):
    loaded, _ = load_tree(tree)
    again, issues = load_files(loaded.files)
    assert issues == [] and again.sha256 == loaded.sha256 and again.counts() == loaded.counts()


def test_unreferenced_schemas_are_part_of_the_tree(tree):
    write(tree, "alpha/schemas/next_source.json", '{"type": "object"}')
    loaded, issues = load_tree(tree)
    assert issues == [] and "alpha/schemas/next_source.json" in loaded.files


def test_a_file_not_valid_utf8(tree):
    (tree / SOURCE).write_bytes(b"source_id: api_source_1\nname: caf\xe9\n")
    assert only(tree) == (SOURCE, "", "not valid UTF-8 text (byte 33)")
