"""Settings read from the environment (12-factor); see base.py for the variables."""
from .base import *  # noqa: F401,F403
from .celery import *  # noqa: F401,F403
from .logging import *  # noqa: F401,F403
from .email import *  # noqa: F401,F403
from .incidents import *  # noqa: F401,F403
from .alpha import *  # noqa: F401,F403
