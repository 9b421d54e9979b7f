"""The OpenAPI schema is valid and generates without warnings (a warning is an endpoint documented wrong)."""
from django.core.management import call_command


def test_openapi_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "/api/gamma/admin/dlq/replay" in text and "/api/sources/{source_id}/records" in text
