"""Secret references: `vault:secret/path/key` (or `vault:secret/path#key`), `env:NAME`, `file:/path`.

Resolved at use, never stored or logged; errors name the reference, never a value.
"""
import os
from pathlib import Path

REF_PREFIXES = ("vault:", "env:", "file:")


class SecretError(Exception):
    pass


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REF_PREFIXES)


def resolve_secret(ref: str) -> str:
    if not is_reference(ref):
        raise SecretError(f"'{ref[:40]}' is not a secret reference (vault:, env: or file:)")
    scheme, _, rest = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(rest)
        if value is None:
            raise SecretError(f"{ref}: environment variable {rest} is not set")
        return value
    if scheme == "file":
        try:
            return Path(rest).read_text().strip()
        except OSError as exc:
            raise SecretError(f"{ref}: cannot read file ({exc.strerror})") from exc
    return _resolve_vault(ref, rest)


def _resolve_vault(ref: str, rest: str) -> str:
    addr = os.environ.get("VAULT_ADDR")
    if not addr:
        raise SecretError(f"{ref}: VAULT_ADDR is not set")
    if "#" in rest:
        path, key = rest.split("#", 1)
    else:
        path, _, key = rest.rpartition("/")
    mount, _, subpath = path.partition("/")
    import hvac  # imported here: only vault references need it

    try:
        client = hvac.Client(url=addr, token=os.environ.get("VAULT_TOKEN"), timeout=5)
        secret = client.secrets.kv.v2.read_secret_version(path=subpath, mount_point=mount, raise_on_deleted_version=True)
    except Exception as exc:  # hvac raises many types; the reason matters, not the type
        raise SecretError(f"{ref}: vault read failed ({type(exc).__name__})") from exc
    data = secret.get("data", {}).get("data", {})
    if key not in data:
        raise SecretError(f"{ref}: key '{key}' not found at {path}")
    return str(data[key])
