"""Secrets at rest: values the project must keep (e.g. cached OAuth2 access tokens) are sealed.

`seal(text)` encrypts with Fernet (AES-128-CBC + HMAC-SHA256, authenticated, random IV) under a key
derived with HKDF-SHA256 from settings.SECRET_KEY, so the database never holds the clear text.
`unseal(text)` returns the clear text, or raises `UnsealError` (never with the value in its message)
when the text was not sealed here or SECRET_KEY changed; callers holding a cache treat that as
"absent". Values sealed under a key listed in settings.SECRET_KEY_FALLBACKS still unseal.
"""
import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

__all__ = ["UnsealError", "seal", "unseal"]

_INFO = b"opsconsole secrets-at-rest v1"
_SALT = b"opsconsole.configuration.secrets_at_rest"


class UnsealError(Exception):
    """A sealed value that cannot be opened (tampered, not sealed, or SECRET_KEY changed)."""


def _derive(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@lru_cache(maxsize=4)
def _cipher(secret_key: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(secret_key), *(_derive(k) for k in fallbacks)])


def _current() -> MultiFernet:
    return _cipher(settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ()))


def seal(text: str) -> str:
    """Encrypt `text` under the current SECRET_KEY; the result is ASCII, safe for a text column."""
    return _current().encrypt(text.encode()).decode("ascii")


def unseal(text: str) -> str:
    """The clear text of a value from `seal`, or UnsealError (the message never carries the value)."""
    try:
        return _current().decrypt(text.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError, TypeError, AttributeError):
        raise UnsealError("sealed value cannot be opened (SECRET_KEY changed or value corrupted)") from None
