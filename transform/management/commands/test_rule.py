"""test_rule --rule F --input F --output F: the manual's beta-rule-tester (Runbook B.1 step 3).

Applies the rule to the sample records without touching the pipeline and writes a JSON file whose
`summary` (records, matched, changed, failed, field_changes, ...) is what step 4 reads with
`jq '.summary'`; `results` has before, after and changes for every record. An enrich rule looks up
the enrichment sources of the active configuration. Exits 1 with `file: field: reason` when the rule
is invalid, or when the input cannot be read.
"""
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError

from configuration.checks import parse_yaml
from opsconsole.errors import ApplicationError
from transform.engine import RuleError, compile_rule
from transform.services import rule_test, samples_parse


class Command(BaseCommand):
    help = "Test a transformation rule on sample records; writes the results (with a summary) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--rule", required=True, help="The rule file (YAML, as in beta/transforms/rules/).")
        parser.add_argument("--input", required=True, help="Sample records: a JSON array or JSON lines.")
        parser.add_argument("--output", required=True, help="Where to write the results JSON.")
        parser.add_argument("--no-enrichment", action="store_true",
                            help="Do not use the active configuration's enrichment sources.")

    def handle(self, *args, rule, input, output, no_enrichment=False, **options):
        rule_path, input_path = Path(rule), Path(input)
        try:
            text = rule_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{rule_path}: cannot read rule file ({exc})", returncode=1) from exc
        spec, problems = parse_yaml(str(rule_path), text)
        if problems or spec is None:
            raise CommandError("\n".join(str(p) for p in problems) or f"{rule_path}: empty rule file", returncode=1)
        try:
            compile_rule(spec)
        except RuleError as exc:
            raise CommandError(f"{rule_path}: {exc.field}: {exc.reason}", returncode=1) from exc
        try:
            records = samples_parse(input_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{input_path}: cannot read input ({exc})", returncode=1) from exc
        except ApplicationError as exc:
            raise CommandError(f"{input_path}: {exc.message}", returncode=1) from exc
        enrichment = None
        if not no_enrichment and (spec.get("transform") or {}).get("type") == "enrich":
            from configuration.runtime import pipeline_runtime

            enrichment = pipeline_runtime().extras.get("enrichment")
        try:
            result = rule_test(rule_spec=spec, records=records, enrichment=enrichment)
        except ApplicationError as exc:
            raise CommandError(f"{rule_path}: {exc.message}", returncode=1) from exc
        result = {"rule_file": str(rule_path), "input_file": str(input_path), **result}
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str) + b"\n")
        s = result["summary"]
        self.stdout.write(f"{s['records']} records: {s['matched']} matched, {s['changed']} changed, "
                          f"{s['failed']} failed, {s['dropped']} dropped; results in {out}")
