"""configuration.secrets_at_rest: sealed values never hold the clear text, round-trip, and fail closed."""
import pytest
from django.test import override_settings

from configuration.secrets_at_rest import UnsealError, seal, unseal

SECRET = "ya29.a0-access-token-Zq81"


def test_sealed_text_hides_the_value_and_round_trips():
    sealed = seal(SECRET)
    assert SECRET not in sealed and sealed.isascii()
    assert unseal(sealed) == SECRET
    assert seal(SECRET) != sealed  # random IV: equal values are not recognisable at rest
    assert unseal(seal("")) == ""
    assert unseal(seal("ünïcode ✓")) == "ünïcode ✓"


def test_another_secret_key_a_tampered_or_unsealed_value_is_an_unseal_error_without_the_value():
    sealed = seal(SECRET)
    with override_settings(SECRET_KEY="a-different-secret-key-after-rotation"):
        with pytest.raises(UnsealError) as raised:
            unseal(sealed)
        assert SECRET not in str(raised.value)
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    for bad in (tampered, SECRET, "", "not base64 !"):
        with pytest.raises(UnsealError):
            unseal(bad)


def test_values_sealed_under_a_fallback_key_still_unseal():
    with override_settings(SECRET_KEY="old-key-for-secrets-at-rest"):
        sealed = seal(SECRET)
    with override_settings(SECRET_KEY="new-key-for-secrets-at-rest", SECRET_KEY_FALLBACKS=["old-key-for-secrets-at-rest"]):
        assert unseal(sealed) == SECRET
