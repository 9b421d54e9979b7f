"""Base settings. Every value that differs between machines comes from the environment.

Environment variables:
  DATABASE_URL          postgres://... (production) or unset for embedded SQLite (WAL)
  CELERY_BROKER_URL     redis://... ; REDIS_URL is used when this is unset; neither: file-system broker
  SECRET_KEY            required when DEBUG is off
  PIPELINE_CONFIG_DIR   the pipeline configuration tree (default: config/)
  OPSCONSOLE_VAR_DIR    where embedded mode keeps its database, broker folders and file outputs
  ALLOWED_HOSTS         comma-separated
  INGEST_MAX_BODY_BYTES largest accepted push body (413 above)
"""
import dj_database_url

from .env import BASE_DIR, VAR_DIR, env_bool, env_int, env_str

VAR_DIR.mkdir(parents=True, exist_ok=True)
VAR_DIR = VAR_DIR  # exported as a setting: exports and embedded state live here

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or ("insecure-embedded-only-" + str(VAR_DIR))
ALLOWED_HOSTS = [h for h in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "opsconsole",
    "configuration",
    "monitoring",
    "ingestion",
    "transform",
    "delivery",
    "incidents",
    "changes",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "opsconsole.urls"
WSGI_APPLICATION = "opsconsole.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_default_sqlite = f"sqlite:///{VAR_DIR / 'opsconsole.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _default_sqlite), conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so
    # concurrent writers wait (busy timeout) instead of failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
if env_str("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns at startup about a missing directory
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "opsconsole.api.BearerOrTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["opsconsole.roles.IsViewerOrOperator"],
    "DEFAULT_PARSER_CLASSES": ["opsconsole.api.LenientJSONParser", "rest_framework.parsers.FormParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "opsconsole.api.exception_handler",
    # The manual's `?format=json|jsonl|csv` (DLQ export) is ours, not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "opsconsole API",
    "DESCRIPTION": "Data pipeline operations: ingestion (Alpha), transformation (Beta), delivery (Gamma).",
    "VERSION": "0.1.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI served from the app's own static files (no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets shared by several fields get one stable name (not "StatusA1aEnum"): keys are the
    # component names, values the choices (matched by their set of values).
    "ENUM_NAME_OVERRIDES": {
        "ChangeStateEnum": "changes.choices.ChangeState",
        "ChangeTypeEnum": "changes.choices.ChangeType",
        "RollbackTriggerEnum": "changes.choices.RollbackTrigger",
        "LowMediumHighEnum": "changes.choices.Priority",  # priority, impact and likelihood
        "IncidentStatusEnum": "incidents.choices.IncidentStatus",
        "CommunicationKindEnum": "incidents.choices.CommunicationKind",
        "ComponentKindEnum": "incidents.choices.ComponentKind",
    },
}

# Pipeline
PIPELINE_CONFIG_DIR = env_str("PIPELINE_CONFIG_DIR", str(BASE_DIR / "config"))
PIPELINE_OUTPUT_DIR = env_str("PIPELINE_OUTPUT_DIR", str(VAR_DIR / "output"))
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES + 1024
INGEST_BATCH_SIZE = env_int("INGEST_BATCH_SIZE", 1000)
# A batch whose stage has not moved for this long is re-sent by the sweeper.
PIPELINE_STUCK_AFTER_SECONDS = env_int("PIPELINE_STUCK_AFTER_SECONDS", 120)
PIPELINE_SWEEP_INTERVAL_SECONDS = env_int("PIPELINE_SWEEP_INTERVAL_SECONDS", 30)
VALIDATION_RAW_MAX_BYTES = env_int("VALIDATION_RAW_MAX_BYTES", 4096)
