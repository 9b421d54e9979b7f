"""The rule engine: every transform type, every condition, on_failure modes, bad input (no database)."""
import hashlib
import hmac
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from transform.conditions import ConditionError, compile_condition
from transform.engine import (
    RuleError,
    RuleSet,
    TransformFailed,
    cast_value,
    compile_rule,
    mask_text,
)

# Runbook B.1 step 1, character for character (enabled: false as the manual writes it; RuleSet runs
# the rules it is given when enabled, so the tests switch it on).
MANUAL_RULE_YAML = r'''
rule_id: TRX_042_NORMALIZE_PHONE
name: "Normalize Phone Numbers"
description: "Standardize phone numbers to E.164 format"
enabled: false
priority: 500

match:
  field: phone_number
  condition: exists

transform:
  type: regex_replace
  config:
    pattern: "^\\+?1?[\\s.-]?\\(?([0-9]{3})\\)?[\\s.-]?([0-9]{3})[\\s.-]?([0-9]{4})$"
    replacement: "+1$1$2$3"

on_failure: skip

metrics:
  emit: true
  tags:
    rule_type: normalization
    target_field: phone_number
'''


def rule(kind: str, config: dict, *, match=None, on_failure="skip", rule_id="R1", **extra) -> dict:
    spec = {"rule_id": rule_id, "enabled": True, "transform": {"type": kind, "config": config},
            "on_failure": on_failure, **extra}
    if match is not None:
        spec["match"] = match
    return spec


def run(spec: dict, record):
    return RuleSet([spec]).apply(record)


# --- the manual's example ------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["555-123-4567", "(555) 123-4567", "555.123.4567", "5551234567", "+1 555 123 4567",
                                 "1-555-123-4567", "+15551234567"])
def test_manual_e164_rule_normalizes_us_numbers(raw):
    spec = yaml.safe_load(MANUAL_RULE_YAML)
    assert spec["enabled"] is False  # as written in the manual
    outcome = RuleSet([{**spec, "enabled": True}]).apply({"phone_number": raw, "id": 1})
    assert outcome.data == {"phone_number": "+15551234567", "id": 1}
    assert outcome.failures == [] and outcome.matched_rules == ["TRX_042_NORMALIZE_PHONE"]


def test_manual_e164_rule_leaves_other_values_and_skips_non_strings():
    spec = {**yaml.safe_load(MANUAL_RULE_YAML), "enabled": True}
    assert run(spec, {"phone_number": "12345"}).data == {"phone_number": "12345"}  # no match: unchanged
    assert run(spec, {"other": 1}).matched_rules == []  # condition exists: not matched
    outcome = run(spec, {"phone_number": 5551234567})
    assert outcome.data == {"phone_number": 5551234567}  # skip: left as it was
    assert outcome.failures[0].reason == "field 'phone_number' is a number, not a string"


def test_disabled_rules_do_not_run():
    spec = yaml.safe_load(MANUAL_RULE_YAML)
    assert RuleSet([spec]).rules == []


# --- each transform type -------------------------------------------------------------------------

def test_set_and_default():
    assert run(rule("set", {"field": "a.b", "value": {"x": [1]}}), {}).data == {"a": {"b": {"x": [1]}}}
    assert run(rule("set", {"field": "a", "value": 2, "only_if_missing": True}), {"a": 1}).data == {"a": 1}
    assert run(rule("default", {"field": "currency", "value": "EUR"}), {}).data == {"currency": "EUR"}
    assert run(rule("default", {"field": "currency", "value": "EUR"}), {"currency": "USD"}).data == {"currency": "USD"}
    assert run(rule("default", {"field": "currency", "value": "EUR"}), {"currency": ""}).data == {"currency": "EUR"}


def test_rename_copy_remove():
    record = {"customer": {"mail": "a@b.c"}, "tmp": 1, "keep": 2}
    assert run(rule("rename", {"from": "customer.mail", "to": "email"}), record).data == \
        {"customer": {}, "tmp": 1, "keep": 2, "email": "a@b.c"}
    assert run(rule("copy", {"from": "keep", "to": "meta.keep"}), record).data["meta"] == {"keep": 2}
    assert run(rule("remove", {"fields": ["tmp", "customer.mail", "absent"]}), record).data == {"customer": {}, "keep": 2}
    assert record["tmp"] == 1  # the input is never changed in place


def test_case_and_trim():
    assert run(rule("case", {"field": "c", "to": "upper"}), {"c": "de"}).data == {"c": "DE"}
    assert run(rule("case", {"fields": ["a", "b"], "to": "title"}), {"a": "jane doe", "b": "X"}).data == \
        {"a": "Jane Doe", "b": "X"}
    assert run(rule("trim", {"field": "n"}), {"n": "  a  b "}).data == {"n": "a  b"}
    assert run(rule("trim", {"field": "n", "collapse_whitespace": True}), {"n": "  a \t b "}).data == {"n": "a b"}
    assert run(rule("trim", {"field": "n", "side": "left", "chars": "0"}), {"n": "0042"}).data == {"n": "42"}


@pytest.mark.parametrize("to,value,expected", [
    ("int", "42", 42), ("int", " 7 ", 7), ("int", 3.0, 3), ("int", "1e3", 1000),
    ("float", "2.5", 2.5), ("float", 3, 3.0),
    ("decimal", "10.10", "10.10"), ("decimal", 0.1, "0.1"),
    ("bool", "Yes", True), ("bool", "off", False), ("bool", 1, True),
    ("string", 12, "12"), ("string", True, "true"),
    ("date", "2026-03-04", "2026-03-04"), ("date", "2026-03-04T23:30:00-02:00", "2026-03-05"),
    ("datetime", "2026-03-04T10:00:00+02:00", "2026-03-04T08:00:00Z"),
    ("datetime", "2026-03-04 10:00:00", "2026-03-04T10:00:00Z"),
    ("datetime", 0, "1970-01-01T00:00:00Z"),
    ("datetime", "2026-03-04T10:00:00.250Z", "2026-03-04T10:00:00.250000Z"),
])
def test_cast(to, value, expected):
    outcome = run(rule("cast", {"field": "v", "to": to}), {"v": value})
    assert outcome.failures == [] and outcome.data == {"v": expected}


def test_cast_options():
    assert run(rule("cast", {"field": "v", "to": "decimal", "scale": 2}), {"v": "3.14159"}).data == {"v": "3.14"}
    assert run(rule("cast", {"field": "v", "to": "date", "format": "%d/%m/%Y"}), {"v": "04/03/2026"}).data == \
        {"v": "2026-03-04"}
    assert run(rule("cast", {"field": "v", "to": "datetime", "assume_timezone": "Europe/Berlin"}),
               {"v": "2026-07-01T12:00:00"}).data == {"v": "2026-07-01T10:00:00Z"}
    assert run(rule("cast", {"field": "v", "to": "datetime", "unit": "ms"}), {"v": 1000}).data == \
        {"v": "1970-01-01T00:00:01Z"}


@pytest.mark.parametrize("to,value,reason", [
    ("int", "12.5", "is not a whole number"), ("int", "abc", "is not an integer"), ("int", True, "boolean"),
    ("float", "x", "is not a number"), ("float", "nan", "not a finite number"), ("bool", "maybe", "not a boolean"),
    ("date", "31/02/2026", "not a date/time"), ("datetime", "yesterday", "not a date/time"),
    ("decimal", "1,5", "not a decimal"), ("int", {"a": 1}, "an object, not a string"),
])
def test_impossible_cast_is_a_counted_failure_and_the_record_is_kept(to, value, reason):
    outcome = run(rule("cast", {"field": "v", "to": to}), {"v": value, "other": 1})
    assert outcome.data == {"v": value, "other": 1}
    [failure] = outcome.failures
    assert failure.rule_id == "R1" and reason in failure.reason and f"to {to}" in failure.reason


def test_map_with_default_and_modes():
    spec = rule("map", {"field": "status", "values": {"A": "active", "I": "inactive", 2: "two", True: "yes"},
                        "default": "unknown"})
    assert run(spec, {"status": "A"}).data == {"status": "active"}
    assert run(spec, {"status": "Z"}).data == {"status": "unknown"}
    assert run(spec, {"status": 2}).data == {"status": "two"}
    assert run(spec, {"status": True}).data == {"status": "yes"}
    keep = rule("map", {"field": "s", "values": {"A": 1}, "to": "code"})
    assert run(keep, {"s": "B"}).data == {"s": "B", "code": "B"}
    strict = rule("map", {"field": "s", "values": {"A": 1}, "on_unmapped": "fail"})
    assert "not in the map" in run(strict, {"s": "B"}).failures[0].reason


def test_concat_and_split():
    spec = rule("concat", {"fields": ["first", "last", "middle"], "to": "name", "separator": " "})
    assert run(spec, {"first": "Ada", "last": "Lovelace"}).data["name"] == "Ada Lovelace"
    strict = rule("concat", {"fields": ["a", "b"], "to": "ab", "separator": "-", "skip_missing": False})
    assert run(strict, {"a": 1, "b": 2}).data["ab"] == "1-2"
    assert "is missing" in run(strict, {"a": 1}).failures[0].reason
    assert run(rule("split", {"field": "tags", "separator": ","}), {"tags": "a, b,c"}).data == {"tags": ["a", "b", "c"]}
    into = rule("split", {"field": "name", "separator": " ", "into": ["first", "last"]})
    assert run(into, {"name": "Ada King Lovelace"}).data == {"name": "Ada King Lovelace", "first": "Ada",
                                                             "last": "King Lovelace"}
    assert run(into, {"name": "Ada"}).data["last"] is None


def test_mask_and_hash_for_pii():
    assert run(rule("mask", {"field": "card"}), {"card": "4111111111111111"}).data == {"card": "************1111"}
    assert run(rule("mask", {"field": "ssn", "keep_first": 1, "keep_last": 2, "char": "#"}), {"ssn": 123456789}).data == \
        {"ssn": "1######89"}
    assert run(rule("mask", {"field": "pin"}), {"pin": "1234"}).data == {"pin": "****"}  # too short to keep any
    plain = run(rule("hash", {"field": "email"}), {"email": "a@b.c"}).data["email"]
    assert plain == hashlib.sha256(b"a@b.c").hexdigest()


def test_hash_with_salt_reference(monkeypatch):
    monkeypatch.setenv("PII_SALT", "pepper")
    spec = rule("hash", {"fields": ["email"], "salt_ref": "env:PII_SALT", "prefix": "h:"})
    assert run(spec, {"email": "a@b.c"}).data["email"] == "h:" + hmac.new(b"pepper", b"a@b.c", "sha256").hexdigest()
    monkeypatch.delenv("PII_SALT")
    missing = run(rule("hash", {"fields": ["email"], "salt_ref": "env:PII_SALT"}), {"email": "a@b.c"})
    assert missing.data == {"email": "a@b.c"} and "salt unavailable" in missing.failures[0].reason


def test_drop_filters_and_is_counted():
    spec = rule("drop", {"reason": "test traffic"}, match={"field": "test", "condition": "equals", "value": True})
    result = RuleSet([spec]).apply_batch([{"test": True}, {"test": False}, {}])
    assert [o.dropped_rule for o in result.outcomes] == ["R1", None, None]
    assert result.outcomes[0].reason == "dropped by rule R1: test traffic"
    assert result.rules["R1"].dropped == 1 and result.rules["R1"].matches == 1 and result.rules["R1"].executions == 3


# --- conditions ----------------------------------------------------------------------------------

RECORD = {"a": {"b": {"c": 5}}, "s": "Hello", "n": "12.5", "lst": [1, 2], "none": None, "flag": False}


@pytest.mark.parametrize("spec,expected", [
    ({"field": "a.b.c", "condition": "exists"}, True),
    ({"field": "a.x", "condition": "exists"}, False),
    ({"field": "none", "condition": "exists"}, False),
    ({"field": "none", "condition": "not_exists"}, True),
    ({"field": "s", "condition": "equals", "value": "Hello"}, True),
    ({"field": "flag", "condition": "equals", "value": False}, True),
    ({"field": "s", "condition": "not_equals", "value": "x"}, True),
    ({"field": "a.b.c", "condition": "in", "value": [1, 5]}, True),
    ({"field": "s", "condition": "not_in", "value": ["Hello"]}, False),
    ({"field": "s", "condition": "regex", "value": "^H.l+o$"}, True),
    ({"field": "s", "condition": "contains", "value": "ell"}, True),
    ({"field": "lst", "condition": "contains", "value": 2}, True),
    ({"field": "s", "condition": "starts_with", "value": "He"}, True),
    ({"field": "s", "condition": "ends_with", "value": "lo"}, True),
    ({"field": "a.b.c", "condition": "gt", "value": 4}, True),
    ({"field": "a.b.c", "condition": "gte", "value": 5}, True),
    ({"field": "n", "condition": "lt", "value": 13}, True),
    ({"field": "n", "condition": "lte", "value": "12"}, False),
    ({"field": "s", "condition": "gt", "value": 1}, False),  # not a number: no match
    ({"field": "flag", "condition": "gte", "value": 0}, False),  # booleans are not numbers
    ({"field": "lst.b", "condition": "exists"}, False),  # a path into a list does not match
    ({"all": [{"field": "s", "condition": "exists"}, {"any": [{"field": "a.b.c", "condition": "lt", "value": 1},
                                                             {"not": {"field": "s", "condition": "equals", "value": "x"}}]}]},
     True),
    ({"any": [{"field": "s", "condition": "equals", "value": "x"}, {"field": "n", "condition": "gt", "value": 100}]},
     False),
])
def test_conditions(spec, expected):
    assert compile_condition(spec)(RECORD) is expected


@pytest.mark.parametrize("spec,field,reason", [
    ({"field": "s", "condition": "regex", "value": "("}, "match.value", "regex does not compile"),
    ({"field": "s", "condition": "nearly"}, "match.condition", "unknown condition"),
    ({"field": "s", "condition": "gt", "value": "x"}, "match.value", "needs a number"),
    ({"field": "s", "condition": "equals"}, "match.value", "is required"),
    ({"field": "s", "condition": "in", "value": "x"}, "match.value", "needs a list"),
    ({"field": "items[0].sku", "condition": "exists"}, "match.field", "list indexes are not supported"),
    ({"field": "a..b", "condition": "exists"}, "match.field", "empty segment"),
    ({"all": []}, "match.all", "non-empty list"),
    ({"all": [{"field": "a", "condition": "exists"}], "field": "b"}, "match", "give one of"),
    ({"any": [{"not": {"field": "x", "condition": "gt"}}]}, "match.any[0].not.value", "is required"),
])
def test_invalid_conditions_name_the_field(spec, field, reason):
    with pytest.raises(ConditionError) as caught:
        compile_condition(spec)
    assert caught.value.field == field and reason in caught.value.reason


# --- on_failure ----------------------------------------------------------------------------------

def test_on_failure_skip_fail_default():
    cast = {"field": "amount", "to": "float"}
    record = {"amount": "n/a", "id": 1}
    skip = run(rule("cast", cast, on_failure="skip"), record)
    assert skip.data == record and skip.failed_rule is None and skip.failures[0].action == "skip"
    fail = run(rule("cast", cast, on_failure="fail"), record)
    assert fail.failed_rule == "R1" and fail.reason.startswith("rule R1: cannot cast field 'amount' to float")
    default = run(rule("cast", cast, on_failure="default", default_value=0.0), record)
    assert default.data == {"amount": 0.0, "id": 1} and default.failed_rule is None


def test_a_failed_rule_leaves_later_rules_running_and_restores_what_it_touched():
    split_then_fail = rule("split", {"field": "name", "separator": " ", "into": ["first", "meta.last"]}, rule_id="A")
    later = rule("set", {"field": "seen", "value": True}, rule_id="B", priority=2000)
    outcome = RuleSet([split_then_fail, later]).apply({"name": "Ada Lovelace", "meta": "not an object"})
    assert outcome.data == {"name": "Ada Lovelace", "meta": "not an object", "seen": True}
    assert "'meta' is a string, so 'meta.last' cannot be set" in outcome.failures[0].reason


def test_fail_stops_the_record_and_rules_run_in_priority_order():
    first = rule("set", {"field": "x", "value": 1, "only_if_missing": True}, rule_id="Z", priority=1)
    failing = rule("cast", {"field": "x", "to": "bool"}, rule_id="A", priority=5, on_failure="fail")
    never = rule("set", {"field": "y", "value": 1}, rule_id="B", priority=9)
    result = RuleSet([never, failing, first]).apply_batch([{}, {"x": "maybe"}])
    assert [r.rule_id for r in RuleSet([never, failing, first]).rules] == ["Z", "A", "B"]
    assert result.outcomes[0].data == {"x": True, "y": 1}  # x set to 1 by Z, then cast
    assert result.rules["B"].executions == 1  # the failed record left the batch at A
    assert result.outcomes[1].failed_rule == "A"


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,field,reason", [
    (rule("regex_replace", {"field": "p", "pattern": "([0-9]"}), "transform.config.pattern", "regex does not compile"),
    (rule("regex_replace", {"field": "p", "pattern": "(a)", "replacement": "$2"}), "transform.config.replacement",
     "invalid group reference 2"),
    (rule("cast", {"field": "v", "to": "money"}), "transform.config.to", "must be one of"),
    (rule("cast", {"field": "v", "to": "int", "format": "%Y"}), "transform.config.format", "only to date"),
    (rule("cast", {"field": "v", "to": "datetime", "assume_timezone": "Mars/Olympus"}),
     "transform.config.assume_timezone", "unknown time zone"),
    (rule("set", {"field": "items[2].sku", "value": 1}), "transform.config.field", "list indexes"),
    (rule("map", {"field": "s"}), "transform.config.values", "is required"),
    (rule("mask", {"field": "s", "char": "**"}), "transform.config.char", "single character"),
    (rule("hash", {"field": "s", "algorithm": "md4"}), "transform.config.algorithm", "must be one of"),
    (rule("enrich", {"source": "x", "key_field": "k"}), "transform.config.fields", "is required"),
    (rule("teleport", {}), "transform.type", "unknown rule type"),
    (rule("cast", {"field": "v", "to": "int"}, on_failure="retry"), "on_failure", "must be one of"),
    (rule("cast", {"field": "v", "to": "int"}, on_failure="default"), "default_value", "is required"),
    (rule("drop", {}, on_failure="default", default_value=1), "on_failure", "drop rule cannot fail"),
    ({"transform": {"type": "set"}}, "rule_id", "is required"),
])
def test_invalid_rules_name_the_field_and_reason(spec, field, reason):
    with pytest.raises(RuleError) as caught:
        compile_rule(spec)
    assert caught.value.field == field and reason in caught.value.reason


def test_path_into_a_list_is_a_counted_failure():
    outcome = run(rule("set", {"field": "items.sku", "value": "X"}), {"items": [{"sku": "A"}]})
    assert outcome.data == {"items": [{"sku": "A"}]}
    assert outcome.failures[0].reason == "'items' is a list, so 'items.sku' cannot be set"
    read = run(rule("case", {"field": "items.sku", "to": "upper"}), {"items": [{"sku": "a"}]})
    assert read.failures[0].reason == "'items' is a list, so 'items.sku' cannot be read"


def test_huge_string_is_refused_by_regex_rules_not_a_stalled_worker():
    spec = rule("regex_replace", {"field": "t", "pattern": "(a+)+$", "replacement": "x"})
    outcome = run(spec, {"t": "a" * 200_000 + "!"})
    assert "over the limit of 100000" in outcome.failures[0].reason
    assert len(outcome.data["t"]) == 200_001  # kept as it was
    assert run(rule("mask", {"field": "t"}), {"t": "x" * 1_000_000}).data["t"].endswith("x" * 4)


def test_records_that_are_not_objects_fail_without_stopping_the_batch():
    result = RuleSet([rule("set", {"field": "a", "value": 1})]).apply_batch([[1, 2], {"b": 2}, "text"])
    assert [o.failed_rule for o in result.outcomes] == ["-", None, "-"]
    assert result.outcomes[1].data == {"b": 2, "a": 1}


def test_a_rule_that_matches_nothing_is_harmless():
    spec = rule("set", {"field": "x", "value": 1}, match={"field": "never", "condition": "equals", "value": "here"})
    result = RuleSet([spec]).apply_batch([{"a": 1}] * 3)
    assert result.rules["R1"].executions == 3 and result.rules["R1"].matches == 0
    assert all(o.data == {"a": 1} for o in result.outcomes)


# --- property-based ------------------------------------------------------------------------------

digits = st.text(alphabet="0123456789", min_size=3, max_size=3)
MANUAL_RULESET = RuleSet([{**yaml.safe_load(MANUAL_RULE_YAML), "enabled": True}])


@given(area=digits, exchange=digits, line=st.text(alphabet="0123456789", min_size=4, max_size=4),
       style=st.sampled_from(["{a}-{e}-{l}", "({a}) {e}-{l}", "{a}.{e}.{l}", "{a}{e}{l}", "+1 {a} {e} {l}",
                              "1-{a}-{e}-{l}", "+1({a}){e}-{l}"]))
@settings(max_examples=40, deadline=None)
def test_property_e164_any_us_format_becomes_plus_one_and_ten_digits(area, exchange, line, style):
    outcome = MANUAL_RULESET.apply({"phone_number": style.format(a=area, e=exchange, l=line)})
    assert outcome.data["phone_number"] == f"+1{area}{exchange}{line}"


@given(text=st.text(max_size=300))
@settings(max_examples=40, deadline=None)
def test_property_regex_replace_matches_python_re_and_never_raises(text):
    spec = rule("regex_replace", {"field": "t", "pattern": r"\s+", "replacement": " "})
    outcome = RuleSet([spec]).apply({"t": text})
    assert outcome.failures == [] and outcome.data["t"] == re.sub(r"\s+", " ", text)


@given(value=st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                       st.booleans(), st.none(), st.lists(st.integers(), max_size=3)),
       to=st.sampled_from(["int", "float", "decimal", "bool", "string", "date", "datetime"]))
@settings(max_examples=100, deadline=None)
def test_property_cast_either_gives_a_json_value_or_fails_cleanly(value, to):
    try:
        result = cast_value(value, to)
    except TransformFailed as exc:
        assert str(exc)
        return
    assert isinstance(result, {"int": int, "float": float, "decimal": str, "bool": bool, "string": str,
                               "date": str, "datetime": str}[to])
    if to == "float":
        assert result == result and abs(result) != float("inf")
    if to == "datetime":
        assert result.endswith("Z")


@given(n=st.integers(min_value=-10**15, max_value=10**15))
def test_property_int_cast_round_trips_through_text(n):
    assert cast_value(str(n), "int") == n and cast_value(float(n) if abs(n) < 2**52 else n, "int") == n


@given(text=st.text(max_size=60), keep_first=st.integers(0, 5), keep_last=st.integers(0, 8))
@settings(max_examples=100)
def test_property_mask_keeps_length_and_reveals_at_most_the_kept_ends(text, keep_first, keep_last):
    masked = mask_text(text, keep_first=keep_first, keep_last=keep_last, char="*")
    assert len(masked) == len(text)
    if len(text) <= keep_first + keep_last:
        assert masked == "*" * len(text)
    else:
        assert masked[:keep_first] == text[:keep_first]
        assert masked[len(text) - keep_last:] == text[len(text) - keep_last:]
        assert set(masked[keep_first:len(text) - keep_last]) <= {"*"}
