"""Test settings: only what tests need differs from production settings."""
from . import *  # noqa: F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PIPELINE_STUCK_AFTER_SECONDS = 5
