"""HTTP side of rest_api sources: credentials, OAuth2 tokens, requests with retries, failure kinds.

Credential references (`*_ref`) are resolved at each use and live only in local variables; no value
is stored, logged or put in an error message. OAuth2 access tokens are cached in the database
(OAuthToken), sealed with configuration.secrets_at_rest, so every worker shares one token until it
expires or the endpoint answers 401; a cached token that no longer unseals (SECRET_KEY changed) is
dropped and a new one fetched.
"""
import hashlib
import hmac
import logging
import random
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import orjson
from django.conf import settings
from django.utils import timezone

from configuration.secrets import SecretError, resolve_secret
from configuration.secrets_at_rest import UnsealError, seal, unseal

from .choices import FailureKind
from .models import OAuthToken

logger = logging.getLogger(__name__)

USER_AGENT = "opsconsole-alpha/1.0"
DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_BACKOFF_MS = 500
MAX_BACKOFF_SECONDS = 30.0
RETRYABLE = {FailureKind.TIMEOUT, FailureKind.REFUSED, FailureKind.CONNECTION, FailureKind.DNS,
             FailureKind.SERVER_ERROR, FailureKind.RATE_LIMITED}


class SourceFetchError(Exception):
    """A failed contact with a source (or its token endpoint), with its kind and stage."""

    def __init__(self, kind: str, message: str, *, stage: str, status_code: int | None = None, attempts: int = 1):
        super().__init__(message)
        self.kind = str(kind)
        self.message = message
        self.stage = stage
        self.status_code = status_code
        self.attempts = attempts

    def as_dict(self) -> dict:
        return {"kind": self.kind, "stage": self.stage, "message": self.message, "status_code": self.status_code,
                "attempts": self.attempts}


@dataclass
class Credentials:
    """Resolved credentials of one use; never kept beyond it."""

    auth_type: str
    values: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # never print values
        return f"Credentials({self.auth_type}, {sorted(self.values)})"


def _resolve(auth_config: dict, name: str, *, required: bool = True) -> str | None:
    """auth_config[name + '_ref'] resolved, or a plain auth_config[name] for non-secret values."""
    ref = auth_config.get(f"{name}_ref")
    if ref:
        try:
            return resolve_secret(ref)
        except SecretError as exc:
            raise SourceFetchError(FailureKind.SECRET, f"cannot resolve auth_config.{name}_ref: {exc}",
                                   stage="credentials") from exc
    plain = auth_config.get(name)
    if plain is None and required:
        raise SourceFetchError(FailureKind.SECRET, f"auth_config.{name}_ref is missing", stage="credentials")
    return plain


def credentials_resolve(connection: dict) -> Credentials:
    auth_type = connection.get("auth_type") or "none"
    auth_config = connection.get("auth_config") or {}
    if auth_type == "none":
        return Credentials("none")
    if auth_type == "basic":
        return Credentials("basic", {"username": _resolve(auth_config, "username"),
                                     "password": _resolve(auth_config, "password")})
    if auth_type == "bearer":
        return Credentials("bearer", {"token": _resolve(auth_config, "token")})
    if auth_type == "api_key":
        return Credentials("api_key", {"api_key": _resolve(auth_config, "api_key")})
    if auth_type == "oauth2":
        if not auth_config.get("token_url"):
            raise SourceFetchError(FailureKind.SECRET, "auth_config.token_url is missing", stage="credentials")
        return Credentials("oauth2", {"client_id": _resolve(auth_config, "client_id"),
                                      "client_secret": _resolve(auth_config, "client_secret")})
    raise SourceFetchError(FailureKind.SECRET, f"unsupported auth_type '{auth_type}'", stage="credentials")


def classify_transport_error(exc: httpx.HTTPError) -> tuple[str, str]:
    """(failure kind, message) of a request that got no HTTP answer."""
    if isinstance(exc, httpx.TimeoutException):
        what = {httpx.ConnectTimeout: "connecting", httpx.ReadTimeout: "waiting for the answer",
                httpx.WriteTimeout: "sending", httpx.PoolTimeout: "waiting for a connection"}.get(type(exc), "")
        return FailureKind.TIMEOUT, f"timed out{' ' + what if what else ''}"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return FailureKind.DNS, f"host name does not resolve ({cause.strerror or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return FailureKind.REFUSED, "connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FailureKind.TLS, f"TLS certificate not trusted ({cause.verify_message or cause.reason})"
        if isinstance(cause, ssl.SSLError):
            return FailureKind.TLS, f"TLS handshake failed ({cause.reason or cause})"
        if isinstance(cause, TimeoutError):
            return FailureKind.TIMEOUT, "timed out"
        cause = cause.__cause__ or cause.__context__
    return FailureKind.CONNECTION, f"{type(exc).__name__}: {exc}"[:300]


def _status_failure(response: httpx.Response, stage: str) -> SourceFetchError:
    code = response.status_code
    if code == 401:
        kind = FailureKind.UNAUTHORIZED
    elif code == 403:
        kind = FailureKind.FORBIDDEN
    elif code == 429:
        kind = FailureKind.RATE_LIMITED
    elif code >= 500:
        kind = FailureKind.SERVER_ERROR
    else:
        kind = FailureKind.HTTP_ERROR
    snippet = response.content[:200].decode("utf-8", "replace").strip()
    detail = f": {snippet}" if snippet and stage != "token" else ""
    return SourceFetchError(kind, f"HTTP {code} {response.reason_phrase}{detail}", stage=stage, status_code=code)


def _backoff_seconds(connection: dict, attempt: int, response: httpx.Response | None) -> float:
    if response is not None and response.status_code == 429:
        try:
            return min(MAX_BACKOFF_SECONDS, float(response.headers.get("retry-after", "")))
        except ValueError:
            pass
    base = (connection.get("retry_backoff_ms") or DEFAULT_BACKOFF_MS) / 1000
    delay = min(MAX_BACKOFF_SECONDS, base * (2 ** attempt))
    return delay * (0.8 + 0.4 * random.random())


def request_budget_seconds(connection: dict) -> float:
    """Longest one request with its retries may take (timeouts plus backoff), for poll leases."""
    timeout = (connection.get("timeout_ms") or DEFAULT_TIMEOUT_MS) / 1000
    retries = connection.get("retry_count", 3) or 0
    base = (connection.get("retry_backoff_ms") or DEFAULT_BACKOFF_MS) / 1000
    backoff = sum(min(MAX_BACKOFF_SECONDS, base * 2 ** i) * 1.2 for i in range(retries))
    # A timeout applies per phase (connect, read); count both.
    return 2 * timeout * (retries + 1) + backoff


def send_with_retries(client: httpx.Client, connection: dict, method: str, url: str, *, stage: str,
                      retries: int | None = None, **kwargs) -> httpx.Response:
    """One request, retried `connection.retry_count` times with exponential backoff on transient failures.

    Returns any answer below 400 and the 401 (the caller may refresh a token); raises SourceFetchError."""
    retries = connection.get("retry_count", 3) if retries is None else retries
    retries = max(0, int(retries or 0))
    attempt = 0
    while True:
        response = None
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            kind, message = classify_transport_error(exc)
            failure = SourceFetchError(kind, message, stage=stage, attempts=attempt + 1)
        else:
            if response.status_code < 400 or response.status_code == 401:
                return response
            failure = _status_failure(response, stage)
            failure.attempts = attempt + 1
        if failure.kind not in RETRYABLE or attempt >= retries:
            if attempt:
                failure.message += f" (after {attempt + 1} attempts)"
            raise failure
        time.sleep(_backoff_seconds(connection, attempt, response))
        attempt += 1


# --- OAuth2 client credentials ------------------------------------------------------------------------

def _credentials_key(auth_config: dict, credentials: Credentials) -> str:
    material = "\0".join([auth_config.get("token_url", ""), credentials.values.get("client_id") or "",
                          credentials.values.get("client_secret") or "", auth_config.get("scope") or ""])
    return hmac.new(settings.SECRET_KEY.encode(), material.encode(), hashlib.sha256).hexdigest()


def token_fetch(*, client: httpx.Client, source_id: str, connection: dict, credentials: Credentials,
                retries: int | None = None) -> tuple[str, float]:
    """Ask the token endpoint for a new access token; cache it for every worker. Returns (token, seconds)."""
    auth_config = connection.get("auth_config") or {}
    data = {"grant_type": "client_credentials"}
    if auth_config.get("scope"):
        data["scope"] = auth_config["scope"]
    kwargs: dict = {"headers": {"Accept": "application/json"}}
    client_id, client_secret = credentials.values["client_id"], credentials.values["client_secret"]
    if auth_config.get("client_auth") == "basic":
        kwargs["auth"] = (client_id, client_secret)
    else:  # the manual's form: client_id and client_secret in the body
        data.update(client_id=client_id, client_secret=client_secret)
    started = time.perf_counter()
    response = send_with_retries(client, connection, "POST", auth_config["token_url"], stage="token", retries=retries,
                                 data=data, **kwargs)
    if response.status_code >= 300:
        failure = _status_failure(response, "token")
        try:
            error = orjson.loads(response.content).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        failure.message = f"token endpoint refused the client credentials: {failure.message}" + (
            f" ({error})" if isinstance(error, str) else "")
        raise failure
    try:
        body = orjson.loads(response.content)
        token = body["access_token"]
        expires_in = float(body.get("expires_in") or 3600)
        token_type = str(body.get("token_type") or "Bearer")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SourceFetchError(FailureKind.TOKEN, "token endpoint answer has no usable access_token",
                               stage="token", status_code=response.status_code) from exc
    if not isinstance(token, str) or not token:
        raise SourceFetchError(FailureKind.TOKEN, "token endpoint answer has no usable access_token", stage="token",
                               status_code=response.status_code)
    key = _credentials_key(auth_config, credentials)
    # Refresh a little before expiry: 10% of the lifetime, at most 30 s.
    expires_at = timezone.now() + timedelta(seconds=expires_in - min(30.0, expires_in * 0.1))
    OAuthToken.objects.update_or_create(source_id=source_id, credentials_key=key, defaults={
        "sealed_token": seal(token), "token_type": token_type if token_type.lower() == "bearer" else "Bearer",
        "expires_at": expires_at})
    OAuthToken.objects.filter(source_id=source_id).exclude(credentials_key=key).delete()  # rotated away
    logger.info("obtained an access token for %s (expires in %.0f s, %.0f ms)", source_id, expires_in,
                (time.perf_counter() - started) * 1000, extra={"source_id": source_id, "component": "oauth2"})
    return token, expires_in


def token_cached(*, source_id: str, connection: dict, credentials: Credentials) -> str | None:
    """The cached, unexpired token of these credentials, or None (also when it no longer unseals)."""
    key = _credentials_key(connection.get("auth_config") or {}, credentials)
    row = (OAuthToken.objects.filter(source_id=source_id, credentials_key=key, expires_at__gt=timezone.now())
           .values_list("pk", "sealed_token").first())
    if row is None:
        return None
    pk, sealed = row
    try:
        return unseal(sealed)
    except UnsealError:  # sealed under another SECRET_KEY: a cache miss, fetch a new token
        OAuthToken.objects.filter(pk=pk, sealed_token=sealed).delete()
        logger.warning("cached access token of %s cannot be unsealed (SECRET_KEY changed?); fetching a new one",
                       source_id, extra={"source_id": source_id, "component": "oauth2"})
        return None


def token_forget(*, source_id: str, token: str) -> None:
    """Drop a token the endpoint refused (only that one: another worker may already have a new one)."""
    for pk, sealed in OAuthToken.objects.filter(source_id=source_id).values_list("pk", "sealed_token"):
        try:
            same = hmac.compare_digest(unseal(sealed).encode(), token.encode())
        except UnsealError:
            same = True  # unusable anyway
        if same:
            OAuthToken.objects.filter(pk=pk, sealed_token=sealed).delete()


class SourceClient:
    """GET requests to a rest_api source with its authentication, retries and token refresh on 401."""

    def __init__(self, *, source_id: str, spec: dict, retries: int | None = None):
        self.source_id = source_id
        self.connection = spec.get("connection") or {}
        self.retries = retries
        self.credentials = credentials_resolve(self.connection)
        timeout = (self.connection.get("timeout_ms") or DEFAULT_TIMEOUT_MS) / 1000
        self.client = httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT})
        self.token_seconds: float | None = None

    def __enter__(self) -> "SourceClient":
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def _auth(self, token: str | None) -> tuple[dict, tuple | None]:
        values = self.credentials.values
        kind = self.credentials.auth_type
        if kind == "basic":
            return {}, (values["username"] or "", values["password"] or "")
        if kind == "bearer":
            return {"Authorization": f"Bearer {values['token']}"}, None
        if kind == "api_key":
            header = (self.connection.get("auth_config") or {}).get("header") or "X-API-Key"
            return {header: values["api_key"]}, None
        if kind == "oauth2":
            return {"Authorization": f"Bearer {token}"}, None
        return {}, None

    def token(self, *, fresh: bool = False) -> str:
        if not fresh:
            cached = token_cached(source_id=self.source_id, connection=self.connection, credentials=self.credentials)
            if cached:
                return cached
        started = time.perf_counter()
        token, _ = token_fetch(client=self.client, source_id=self.source_id, connection=self.connection,
                               credentials=self.credentials, retries=self.retries)
        self.token_seconds = time.perf_counter() - started
        return token

    def get(self, url: str, *, params: dict | None = None, headers: dict | None = None,
            fresh_token: bool = False) -> httpx.Response:
        """A successful (2xx/3xx) answer, or SourceFetchError. A 401 with OAuth2 refreshes the token once."""
        token = self.token(fresh=fresh_token) if self.credentials.auth_type == "oauth2" else None
        for refreshed in (False, True):
            auth_headers, basic = self._auth(token)
            response = send_with_retries(self.client, self.connection, "GET", url, stage="fetch", retries=self.retries,
                                         params=params, headers={**(headers or {}), **auth_headers}, auth=basic)
            if response.status_code != 401:
                return response
            if self.credentials.auth_type != "oauth2" or refreshed:
                break
            token_forget(source_id=self.source_id, token=token)
            token = self.token(fresh=True)
        raise _status_failure(response, "fetch")
