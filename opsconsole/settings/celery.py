"""Celery: one queue per module (alpha, beta, gamma) plus ops for housekeeping.

Durability lives in the database (DESIGN.md §3): messages only say "look at batch X".
"""
from .env import VAR_DIR, env_int, env_str

_broker = env_str("CELERY_BROKER_URL") or env_str("REDIS_URL")
if _broker:
    CELERY_BROKER_URL = _broker
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600)}
else:
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "out").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
CELERY_TASK_DEFAULT_QUEUE = "ops"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Every task is routed to its module's queue; tests/test_task_routes.py fails on a task without one.
CELERY_TASK_ROUTES = {
    "ingestion.*": {"queue": "alpha"},
    "transform.*": {"queue": "beta"},
    "delivery.*": {"queue": "gamma"},
    "ops.*": {"queue": "ops"},
}

CELERY_BEAT_SCHEDULE = {
    "transform.prune_transform_runs": {
        "task": "transform.prune_transform_runs",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    "ops.sweep_stuck_batches": {
        "task": "ops.sweep_stuck_batches",
        "schedule": float(env_int("PIPELINE_SWEEP_INTERVAL_SECONDS", 30)),
        "options": {"expires": 60},
    },
    "ops.incidents_escalate_due": {
        "task": "ops.incidents_escalate_due",
        "schedule": float(env_int("INCIDENT_ESCALATION_INTERVAL_SECONDS", 30)),
        "options": {"expires": 60},
    },
    "ops.incidents_check_pipeline_signals": {
        "task": "ops.incidents_check_pipeline_signals",
        "schedule": float(env_int("INCIDENT_SIGNAL_INTERVAL_SECONDS", 60)),
        "options": {"expires": 120},
    },
    "ingestion.scan_file_sources": {
        "task": "ingestion.scan_file_sources",
        "schedule": float(env_int("FILE_SOURCE_SCAN_SECONDS", 5)),
        "options": {"expires": 30},
    },
    # rest_api polls are not here: each enabled source has its own schedule row, made by config reload.
    "ingestion.sample_buffer": {
        "task": "ingestion.sample_buffer",
        "schedule": float(env_int("ALPHA_BUFFER_SAMPLE_SECONDS", 10)),
        "options": {"expires": 30},
    },
}
