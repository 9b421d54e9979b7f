"""validate_config, reload_config, config_versions, rollback_config: output and exit codes."""
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from configuration.models import ConfigVersion
from opsconsole.models import AuditEntry


def manage(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command as an operator runs it: a real process, its real exit code."""
    return subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        check=False, capture_output=True, text=True, cwd=cwd or settings.BASE_DIR, env={**os.environ}, timeout=120,
    )


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_validate_config_on_the_shipped_tree():
    done = manage("validate_config", "config")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"OK: \d+ files valid", done.stdout.strip())


def test_validate_config_prints_every_error_and_exits_1(tree: Path):
    (tree / "alpha/sources/api_source_1.yaml").write_text("source_id: api_source_1\nsource_type: kafka\n")
    (tree / "beta/quality/scoring.yaml").write_text(
        (tree / "beta/quality/scoring.yaml").read_text().replace("reject: 0.3", "reject: 0.9"))
    done = manage("validate_config", str(tree))
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert "alpha/sources/api_source_1.yaml: source_type: unknown source_type 'kafka' (known: rest_api, http_push, file)" in lines
    assert any(line.startswith("beta/quality/scoring.yaml: quality_scoring.thresholds: must be ordered") for line in lines)
    assert "2 errors" in done.stderr


def test_validate_config_single_files_of_every_kind(tree: Path):
    files = [
        "alpha/sources/new_api_source.yaml", "alpha/schemas/api_source_1.json",
        "beta/transforms/rules/TRX_042_NORMALIZE_PHONE.yaml", "beta/quality/scoring.yaml",
        "gamma/destinations/analytics_warehouse.yaml", "gamma/routing/rules/ROUTE_TO_ANALYTICS.yaml",
    ]
    done = manage("validate_config", *files, cwd=tree)
    assert (done.returncode, done.stdout.strip()) == (0, "OK: 6 files valid"), done.stderr


def test_validate_config_detects_the_kind_by_content(tmp_path: Path):
    (tmp_path / "new_rule.yaml").write_text(
        "rule_id: R1\ntransform:\n  type: regex_replace\n  config: {field: phone, pattern: '(', replacement: x}\n")
    (tmp_path / "route.yaml").write_text("rule_id: R2\ndestination: local_archive\nmatch: {quality_score: {gte: high}}\n")
    (tmp_path / "mystery.yaml").write_text("hello: world\n")
    done = manage("validate_config", "new_rule.yaml", "route.yaml", "mystery.yaml", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("new_rule.yaml: transform.config.pattern: regex does not compile")
    assert lines[1] == "route.yaml: match.quality_score.gte: must be a number"
    assert lines[2].startswith("mystery.yaml: (document): cannot tell what this file configures")


def test_validate_config_single_routing_rule_checked_against_its_tree(tree: Path):
    route = tree / "gamma/routing/rules/ROUTE_TO_ARCHIVE.yaml"
    route.write_text(route.read_text().replace("destination: local_archive", "destination: lake"))
    done = manage("validate_config", str(route))
    assert done.returncode == 1
    assert done.stdout.strip() == (f"{route}: destination: unknown destination 'lake' "
                                   "(known: analytics_warehouse, local_archive)")


def test_validate_config_missing_path():
    done = manage("validate_config", "no/such/file.yaml")
    assert done.returncode == 1 and "no/such/file.yaml: (document): no such file or directory" in done.stdout


@pytest.mark.django_db
def test_reload_config_prints_the_version_then_unchanged(tree: Path):
    out, _ = run("reload_config", "--dir", str(tree), "--comment", "initial load")
    version = ConfigVersion.objects.get()
    assert out.splitlines()[0] == f"Applied configuration v1 sha256 {version.sha256}"
    assert "3 sources" in out and version.comment == "initial load"
    assert AuditEntry.objects.get(action="config.reload").actor_name.startswith("cli:")
    out, _ = run("reload_config", "--dir", str(tree))
    assert out.startswith(f"Unchanged: configuration v1 sha256 {version.sha256} is already active")


@pytest.mark.django_db
def test_reload_config_prints_errors_and_exits_1(tree: Path):
    (tree / "gamma/destinations/local_archive.yaml").write_text("destination_id: local_archive\n")
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("reload_config", "--dir", str(tree), stdout=StringIO(), stderr=err)
    assert caught.value.returncode == 1
    assert "gamma/destinations/local_archive.yaml: connection: is required" in err.getvalue()
    assert ConfigVersion.objects.count() == 0


@pytest.mark.django_db
def test_config_versions_and_rollback_config(tree: Path):
    out, _ = run("config_versions")
    assert "No configuration applied yet" in out
    run("reload_config", "--dir", str(tree))
    (tree / "beta/transforms/rules/TRX_042_NORMALIZE_PHONE.yaml").unlink()
    run("reload_config", "--dir", str(tree), "--comment", "drop phone rule")
    out, _ = run("rollback_config", "1", "--reason", "phone numbers no longer normalized")
    assert out.startswith("Rolled back to v1: applied as v3 sha256 ")
    listing, _ = run("config_versions")
    rows = listing.strip().splitlines()
    assert rows[0].startswith("* v3") and "rollback to v1: phone numbers no longer normalized" in rows[0]
    assert rows[1].startswith("  v2") and "drop phone rule" in rows[1]
    with pytest.raises(CommandError) as caught:
        call_command("rollback_config", "7", "--reason", "x", stdout=StringIO(), stderr=StringIO())
    assert caught.value.returncode == 1 and "does not exist" in str(caught.value)
