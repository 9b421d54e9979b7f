"""Runbook A.2, zero-downtime credential rotation, walked step by step with a real OAuth2 token endpoint
and credentials read from Vault (KV v2 over HTTP through hvac): the source never stops ingesting."""
import httpx
import pytest
import yaml

from ingestion.models import Record, SourceError
from ingestion.polling import source_poll
from tests.conftest import FILE_DESTINATION, ROUTE_ALL_TO_ARCHIVE, write_config

from .conftest import oauth2_auth, rest_source
from .servers import make_record, vault_server

pytestmark = pytest.mark.django_db

PRIMARY = "vault:secret/pipeline/rest_src"
STAGED = "vault:secret/pipeline/rest_src/new"


@pytest.fixture
def vault(monkeypatch):
    with vault_server() as vault:
        monkeypatch.setenv("VAULT_ADDR", vault.url)
        monkeypatch.setenv("VAULT_TOKEN", vault.token)
        yield vault


def test_rotating_oauth2_credentials_keeps_the_source_ingesting(source_api, vault, tmp_path, settings, operator_client):
    source_api.auth = "oauth2"
    source_api.clients = {"old-id": "old-secret"}
    vault.put("pipeline/rest_src", client_id="old-id", client_secret="old-secret")
    root = tmp_path / "pipeline"
    settings.PIPELINE_CONFIG_DIR = str(root)
    served = {"n": 0}

    def write(prefix: str) -> None:
        source = rest_source(source_api, auth=oauth2_auth(source_api, f"{prefix}/client_id", f"{prefix}/client_secret"))
        write_config(root, sources=[source], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])

    def reload_and_check() -> None:  # steps 4/5 and 8: curl -X POST .../admin/config/reload; curl .../status
        response = operator_client.post("/api/alpha/admin/config/reload")
        assert response.status_code == 200, response.content
        status = operator_client.get("/api/alpha/admin/sources/rest_src/status").json()
        assert status["status"] == "active" and status["health"] in ("HEALTHY", "UNKNOWN"), status

    def keeps_ingesting() -> None:
        source_api.add([make_record(served["n"] + i) for i in range(3)])
        served["n"] += 3
        result = source_poll(source_id="rest_src")
        assert result.outcome == "ok", result
        assert Record.objects.filter(source_id="rest_src").count() == served["n"]

    write(PRIMARY)
    reload_and_check()
    keeps_ingesting()
    assert source_api.token_requests == 1

    # 1. Stage new credentials in vault (the source system has issued them).
    source_api.clients["new-id"] = "new-secret"
    vault.put("pipeline/rest_src/new", client_id="new-id", client_secret="new-secret")
    keeps_ingesting()
    # 2. Verify the new credentials work at the token endpoint.
    token = httpx.post(source_api.base_url + "/oauth/token",
                       data={"client_id": "new-id", "client_secret": "new-secret", "grant_type": "client_credentials"})
    assert token.status_code == 200 and token.json()["access_token"]
    # 3-5. Point the source at the staged credentials, reload, verify it goes on.
    write(STAGED)
    reload_and_check()
    keeps_ingesting()
    assert source_api.token_requests == 3  # step 2's own request, then a token for the new credentials
    # 6. Move the new credentials to the primary location.
    vault.put("pipeline/rest_src", client_id="new-id", client_secret="new-secret")
    keeps_ingesting()
    # 7-8. Point the configuration back at the primary location, reload, verify.
    write(PRIMARY)
    reload_and_check()
    keeps_ingesting()
    # 9. Clean up the temporary credentials.
    vault.delete("pipeline/rest_src/new")
    keeps_ingesting()
    # 10. Revoke the old credentials at the source system: nothing uses them any more.
    del source_api.clients["old-id"]
    source_api.revoke_tokens("old-id")
    keeps_ingesting()

    assert SourceError.objects.count() == 0 and source_api.unauthorized == 0  # no authentication error at any step
    ids = list(Record.objects.filter(source_id="rest_src").values_list("payload__id", flat=True))
    assert len(ids) == len(set(ids)) == served["n"] == 21
    # The applied configuration holds references only, never a credential.
    applied = yaml.safe_dump(operator_client.get("/api/alpha/admin/sources").json())
    assert "new-secret" not in applied and "old-secret" not in applied
    assert vault.reads > 0
