"""manage.py reconcile: ingested = rejected + filtered + delivered + held + dlq + in_flight, per source."""
import orjson
from django.core.management.base import BaseCommand

from ingestion.selectors import BUCKETS, reconciliation


class Command(BaseCommand):
    help = "Show where every ingested record is, per source and in total; exit 1 if the books do not balance."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    def handle(self, *args, **options):
        report = reconciliation()
        if options["json"]:
            self.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        else:
            columns = ("ingested", *BUCKETS, "balanced")
            self.stdout.write(f"{'source':<24}" + "".join(f"{c:>11}" for c in columns))
            for name, row in [*report["sources"].items(), ("TOTAL", report["total"])]:
                self.stdout.write(f"{name:<24}" + "".join(f"{str(row[c]):>11}" for c in columns))
        if not report["total"]["balanced"]:
            self.stderr.write("NOT BALANCED: some records are unaccounted for.")
            raise SystemExit(1)
