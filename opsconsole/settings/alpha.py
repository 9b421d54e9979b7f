"""Module Alpha (ingestion): the buffer and back-pressure, polling, source health.

Environment variables:
  ALPHA_BUFFER_CAPACITY            records ingested but not yet transformed that the buffer holds
                                   (default 100000; POST /api/alpha/admin/buffer/resize changes it at run time)
  ALPHA_THROTTLE_INTERVAL_SECONDS  while throttled (80%), each source is admitted once per this interval (default 1)
  ALPHA_PAUSED_RETRY_AFTER_SECONDS Retry-After of a push refused while ingestion is paused (default 30)
  ALPHA_FULL_RETRY_AFTER_SECONDS   Retry-After of a push refused while the buffer is full (default 5)
  ALPHA_UNHEALTHY_AFTER_FAILURES   consecutive failed polls after which a source is UNHEALTHY (default 3)
  ALPHA_MAX_PAGES_PER_POLL         pages one poll follows at most (default 10; polling.max_pages overrides)
  ALPHA_BUFFER_SAMPLE_SECONDS      how often beat samples the buffer for the dashboard (default 10)
"""
from .env import env_float, env_int

ALPHA_BUFFER_CAPACITY = env_int("ALPHA_BUFFER_CAPACITY", 100_000)
# The manual's thresholds: warn at 60%, throttle at 80%, pause at 100% (alpha_buffer_critical fires at 90%).
ALPHA_BUFFER_WARNING = 0.6
ALPHA_BUFFER_THROTTLE = 0.8
ALPHA_BUFFER_CRITICAL = 0.9
ALPHA_THROTTLE_INTERVAL_SECONDS = env_float("ALPHA_THROTTLE_INTERVAL_SECONDS", 1.0)
ALPHA_PAUSED_RETRY_AFTER_SECONDS = env_int("ALPHA_PAUSED_RETRY_AFTER_SECONDS", 30)
ALPHA_FULL_RETRY_AFTER_SECONDS = env_int("ALPHA_FULL_RETRY_AFTER_SECONDS", 5)
ALPHA_UNHEALTHY_AFTER_FAILURES = env_int("ALPHA_UNHEALTHY_AFTER_FAILURES", 3)
ALPHA_MAX_PAGES_PER_POLL = env_int("ALPHA_MAX_PAGES_PER_POLL", 10)
ALPHA_BUFFER_SAMPLE_SECONDS = env_int("ALPHA_BUFFER_SAMPLE_SECONDS", 10)
ALPHA_KEEP_SAMPLES_HOURS = 24
ALPHA_KEEP_SOURCE_ERRORS_DAYS = 14
