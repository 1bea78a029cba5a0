"""Settings for the Tagging Platform, read from the environment.

Defaults give the embedded setup (SQLite under DATA_DIR and a file-system Celery broker that needs
no server). Production sets DATABASE_URL, REDIS_URL, SECRET_KEY and DEBUG=0; see README.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from tagging_platform.env import envbool, envfloat, envint, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent.parent  # the repository root
#: Set by the test runner (scripts/test.py, and tests/conftest.py for `pytest` run directly), never
#: guessed from what happens to be imported.
TESTING = envbool("TESTING", False)

DEBUG = envbool("DEBUG", True)
#: The development key in this repository: public, so never accepted with DEBUG=0.
DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"
SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0.")
    SECRET_KEY = DEV_SECRET_KEY
elif not DEBUG and (SECRET_KEY == DEV_SECRET_KEY or SECRET_KEY.startswith("dev-only-insecure")):
    raise ImproperlyConfigured(
        "SECRET_KEY is the repository's public development key; set a long random one with DEBUG=0."
    )
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

DATA_DIR = Path(envstr("DATA_DIR", str(BASE_DIR / "var"))).resolve()
ARTIFACT_ROOT = Path(envstr("ARTIFACT_ROOT", str(DATA_DIR / "artifacts"))).resolve()
#: "local" (ARTIFACT_ROOT, the embedded default) or "s3" (an S3-compatible bucket through
#: django-storages; credentials from the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
ARTIFACT_STORAGE = envstr("ARTIFACT_STORAGE", "local")
if ARTIFACT_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(f"ARTIFACT_STORAGE must be local or s3, not {ARTIFACT_STORAGE!r}.")
ARTIFACT_S3_BUCKET = envstr("ARTIFACT_S3_BUCKET", "")
ARTIFACT_S3_PREFIX = envstr("ARTIFACT_S3_PREFIX", "artifacts")
if ARTIFACT_STORAGE == "s3" and not ARTIFACT_S3_BUCKET:
    raise ImproperlyConfigured("ARTIFACT_S3_BUCKET must be set when ARTIFACT_STORAGE=s3.")
#: This host's read-through cache of verified artifacts downloaded from object storage.
ARTIFACT_CACHE_DIR = Path(envstr("ARTIFACT_CACHE_DIR", str(DATA_DIR / "artifact-cache"))).resolve()
ARTIFACT_CACHE_MAX_BYTES = envint("ARTIFACT_CACHE_MAX_BYTES", 2 * 1024**3, minimum=1)

INSTALLED_APPS = [
    "tenants.admin_site.PlatformAdminConfig",  # django.contrib.admin, unscoped for staff
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "axes",
    # company-wide domain (top level)
    "tenants",
    "taxonomy",
    "workers",
    # platform-wide apps (under platform/)
    "registry",
    "serving",
    "monitoring",
    "retraining",
    "review",
    "optimisation",
    "records",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tagging_platform.middleware.RequestIdMiddleware",
    "tagging_platform.middleware.ContentSecurityPolicyMiddleware",
    # Before the edge check, so even its errors speak the request's Accept-Language.
    "tagging_platform.middleware.LocaleMiddleware",  # Django's, without its unused path lookups
    "tagging_platform.middleware.EdgeValidationMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A signed-in portal user's language from their profile (overrides the browser's).
    "tagging_platform.middleware.UserLanguageMiddleware",
    "tagging_platform.middleware.MessageMiddleware",  # Django's, skipped under /api/
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tagging_platform.urls"
WSGI_APPLICATION = "tagging_platform.wsgi.application"
ASGI_APPLICATION = "tagging_platform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.tenancy",
            ],
            # {% translate %}, {% blocktranslate %} and {% localize %} in every template.
            "builtins": ["django.templatetags.i18n", "django.templatetags.l10n"],
        },
    },
]

# The tenancy base views (core.scoping) find a request's memberships in this module; core
# imports no app.
TENANCY_MEMBERSHIPS = "tenants.memberships"

# A taxonomy label merge rewrites the rows of the apps above taxonomy that refer to labels, in
# this order (the key names the count in the merge's history); taxonomy imports none of them.
# A label's usage (what keeps it from being deleted) needs no list: taxonomy reads every
# PROTECT reference to a label from Django's model registry.
TAXONOMY_LABEL_MERGE_STEPS = {
    "training_sample_labels": "registry.services.datasets.training_labels_merge_all_tenants",
    "needs": "tenants.services.need_labels_merge_all_tenants",
}

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = envstr("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 60))
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL and IMMEDIATE transactions avoid "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery ----------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL") or None
# The result cache and quota counters (evictable: production gives them their own Redis with
# maxmemory + allkeys-lru, deploy/redis/cache.conf); the broker's REDIS_URL must never evict.
CACHE_REDIS_URL = envstr("CACHE_REDIS_URL") or REDIS_URL
if CACHE_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_REDIS_URL,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

# Longest task (a training run) must finish well inside the Redis visibility timeout (acks_late).
CELERY_LONGEST_TASK_SECONDS = envint("CELERY_LONGEST_TASK_SECONDS", 3600, minimum=60)
# A training run or retrain stamps its row every TRAINING_HEARTBEAT_SECONDS while a worker runs it;
# one whose stamp is older than TRAINING_STALE_SECONDS lost its worker (a SIGKILL, an OOM kill, a
# lost host), and the sweeper (every TRAINING_SWEEP_SECONDS) sends it to the queue again.
TRAINING_HEARTBEAT_SECONDS = envfloat("TRAINING_HEARTBEAT_SECONDS", 15.0, minimum=0.5)
TRAINING_STALE_SECONDS = envfloat(
    "TRAINING_STALE_SECONDS", 120.0, minimum=3 * TRAINING_HEARTBEAT_SECONDS
)
TRAINING_SWEEP_SECONDS = envfloat("TRAINING_SWEEP_SECONDS", 60.0, minimum=1.0)
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL") or REDIS_URL or "filesystem://localhost//"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's file-system transport with atomic writes and claims (kombu #1551 crashed workers).
    CELERY_BROKER_TRANSPORT = "tagging_platform.embedded_broker:Transport"
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_LONGEST_TASK_SECONDS * 2}
CELERY_RESULT_BACKEND = envstr("CELERY_RESULT_BACKEND") or REDIS_URL or "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = "UTC"
# Every task has a time limit, and the hard limit stays below the visibility timeout above, so a
# task still running is never handed to a second worker. Shorter per-task limits live on the
# tasks (workers/tasks/base.py `time_limits`); these are the ceiling for the longest (training).
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_LONGEST_TASK_SECONDS
CELERY_TASK_TIME_LIMIT = CELERY_LONGEST_TASK_SECONDS + max(30, CELERY_LONGEST_TASK_SECONDS // 20)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
PREDICTION_LOG_FLUSH_SECONDS = envfloat("PREDICTION_LOG_FLUSH_SECONDS", 5.0, minimum=0.1)
STREAM_SWEEP_SECONDS = envfloat("STREAM_SWEEP_SECONDS", 60.0, minimum=1.0)
#: PostgreSQL: daily partitions of the prediction log created this many days ahead by beat.
PREDICTION_LOG_PARTITIONS_AHEAD = envint("PREDICTION_LOG_PARTITIONS_AHEAD", 7, minimum=1)
#: Days of raw prediction log kept; older days are dropped whole once aggregated. 0 keeps all.
PREDICTION_LOG_RETENTION_DAYS = envint("PREDICTION_LOG_RETENTION_DAYS", 90, minimum=0)


def _beat(task: str, schedule, *, expires: float, queue: str) -> dict:
    # django-celery-beat reads `expire_seconds` from an entry's options (it drops `expires`) and
    # sends it as the message's `expires`: a run that waited longer than that is discarded.
    return {
        "task": task,
        "schedule": schedule,
        "options": {"queue": queue, "expire_seconds": max(1, int(expires))},
    }


def _crontab(**fields):
    from celery.schedules import crontab

    return crontab(**fields)


# The one place for the platform's periodic tasks (synced into django-celery-beat's table at
# beat start). Per-tenant scheduled batches are rows that serving.services creates, also expiring.
CELERY_BEAT_SCHEDULE = {
    "serving: flush the prediction log": _beat(
        "workers.tasks.online.flush_prediction_log",
        PREDICTION_LOG_FLUSH_SECONDS,
        expires=PREDICTION_LOG_FLUSH_SECONDS,
        queue="online",
    ),
    "serving: re-queue stream items left pending": _beat(
        "workers.tasks.online.tag_pending_items",
        STREAM_SWEEP_SECONDS,
        expires=STREAM_SWEEP_SECONDS,
        queue="online",
    ),
    "monitoring: daily aggregates, drift and alerts (yesterday)": _beat(
        "workers.tasks.monitoring.run_daily_monitoring",
        _crontab(minute="15", hour="0"),
        expires=6 * 3600,
        queue="monitoring",
    ),
    "monitoring: refresh today's aggregates": _beat(
        "workers.tasks.monitoring.refresh_today",
        _crontab(minute="5"),
        expires=55 * 60,
        queue="monitoring",
    ),
    "monitoring: weekly aggregates, drift and alerts": _beat(
        "workers.tasks.monitoring.run_weekly_monitoring",
        _crontab(minute="45", hour="0"),
        expires=12 * 3600,
        queue="monitoring",
    ),
    "optimisation: fail runs whose worker stopped reporting": _beat(
        "workers.tasks.training.sweep_stale_optimisation_runs",
        300,
        expires=300,
        queue="training",
    ),
    "training: send again the runs and retrains whose worker died": _beat(
        "workers.tasks.training.sweep_stale_training",
        TRAINING_SWEEP_SECONDS,
        expires=TRAINING_SWEEP_SECONDS,
        queue="training",
    ),
    "serving: create the prediction log's daily partitions ahead": _beat(
        "workers.tasks.monitoring.prediction_log_partitions_ahead",
        _crontab(minute="50"),
        expires=55 * 60,
        queue="monitoring",
    ),
    "monitoring: prediction log retention (aggregated days only)": _beat(
        "workers.tasks.monitoring.prediction_log_retention",
        _crontab(minute="30", hour="2"),
        expires=12 * 3600,
        queue="monitoring",
    ),
}

# Review rounds started by drift and rare-class alerts, and cases collected from negative feedback
# and low-confidence predictions (review sits above monitoring, so it polls for new alerts).
REVIEW_SWEEP_SECONDS = envfloat("REVIEW_SWEEP_SECONDS", 900.0, minimum=1.0)
CELERY_BEAT_SCHEDULE["review: rounds for new alerts, cases from feedback"] = _beat(
    "workers.tasks.monitoring.review_sweep",
    REVIEW_SWEEP_SECONDS,
    expires=REVIEW_SWEEP_SECONDS,
    queue="monitoring",
)
# Sync texts kept for review (a per-need opt-in share): the longest any need may keep them, how
# soon a share change reaches the serving processes, and the hourly purge of expired texts.
SYNC_REVIEW_TEXT_MAX_DAYS = envint("SYNC_REVIEW_TEXT_MAX_DAYS", 90, minimum=1)
SYNC_REVIEW_SHARE_REFRESH_SECONDS = envfloat("SYNC_REVIEW_SHARE_REFRESH_SECONDS", 30.0, minimum=0.0)
CELERY_BEAT_SCHEDULE["review: purge sync texts past their retention"] = _beat(
    "workers.tasks.monitoring.purge_sync_review_texts",
    _crontab(minute="40"),
    expires=55 * 60,
    queue="monitoring",
)
# Optimisation runs (issue 17): the longest time limit a user may ask for, how long a running
# run may go without a heartbeat before it counts as dead, and the latency measurement protocol.
OPTIMISATION_MAX_SECONDS = envint("OPTIMISATION_MAX_SECONDS", 1800, minimum=10)
OPTIMISATION_STALE_SECONDS = envint("OPTIMISATION_STALE_SECONDS", 600, minimum=30)
OPTIMISATION_WARMUP = envint("OPTIMISATION_WARMUP", 20, minimum=1)
OPTIMISATION_REPETITIONS = envint("OPTIMISATION_REPETITIONS", 200, minimum=10)
# Real-time priority (SCHED_FIFO 1-99) for the latency measurement step, 0 = the normal policy.
# Needs CAP_SYS_NICE; without it the measurement runs normally and says so in its conditions.
OPTIMISATION_MEASUREMENT_FIFO_PRIORITY = envint(
    "OPTIMISATION_MEASUREMENT_FIFO_PRIORITY", 0, minimum=0
)

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Login throttling (django-axes) for the portal and the admin, which share Django's login: after
# LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is locked out
# for LOGIN_LOCKOUT_MINUTES (even with the right password); a success resets the count. Behind
# nginx set LOGIN_PROXY_COUNT=1 so the client address comes from X-Forwarded-For.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
if envint("LOGIN_PROXY_COUNT", 0, minimum=0):
    AXES_IPWARE_PROXY_COUNT = envint("LOGIN_PROXY_COUNT", 0, minimum=0)
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"

LANGUAGE_CODE = "en"
#: The portal's languages: a user's choice is kept on their profile (tenants.UserProfile), else
#: the browser's Accept-Language decides (LocaleMiddleware). Translations: locale/ (make messages).
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
#: A new tenant's time zone (its monitoring days and weeks, and the dates it is shown).
TENANT_DEFAULT_TIME_ZONE = envstr("TENANT_DEFAULT_TIME_ZONE", "UTC") or "UTC"
#: A new tenant's language for what workers write to it without a reader at hand: the human
#: `summary` of alert webhooks, and alert e-mails to an address no portal user has.
TENANT_DEFAULT_LANGUAGE = envstr("TENANT_DEFAULT_LANGUAGE", "en") or "en"
if TENANT_DEFAULT_LANGUAGE not in dict(LANGUAGES):
    raise ImproperlyConfigured(
        f"TENANT_DEFAULT_LANGUAGE={TENANT_DEFAULT_LANGUAGE!r} is not one of {list(dict(LANGUAGES))}."
    )
#: The demo business units (and the monitoring demo and replay) work on Beijing time.
DEMO_TIME_ZONE = envstr("DEMO_TIME_ZONE", "Asia/Shanghai") or "Asia/Shanghai"
for _name, _zone in (
    ("TENANT_DEFAULT_TIME_ZONE", TENANT_DEFAULT_TIME_ZONE),
    ("DEMO_TIME_ZONE", DEMO_TIME_ZONE),
):
    try:
        ZoneInfo(_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ImproperlyConfigured(f"{_name}={_zone!r} is not an IANA time zone.") from exc

STATIC_URL = "/static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(DATA_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
if ARTIFACT_STORAGE == "s3":
    STORAGES["artifacts"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ARTIFACT_S3_BUCKET,
            "endpoint_url": envstr("ARTIFACT_S3_ENDPOINT_URL") or None,  # unset: AWS itself
            "region_name": envstr("ARTIFACT_S3_REGION") or None,
            "file_overwrite": True,  # keys are content addresses: same key, same bytes
            "default_acl": None,
            "querystring_auth": False,
        },
    }

# --- Security (production passes `manage.py check --deploy`) ---------------------------------
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
X_FRAME_OPTIONS = "DENY"
#: No inline script anywhere (portal, admin, API docs): scripts come from our static files only.
#: Styles may be inline (style attributes, htmx's indicator style); Redoc needs blob: workers.
CONTENT_SECURITY_POLICY = envstr(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "tagging_platform.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "tagging_platform.errors.api_exception_handler",
    # DRF's negotiation, answered without parsing Accept for the JSON-only views' usual requests.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "tagging_platform.negotiation.JsonFastContentNegotiation",
    # JSON bodies are decoded once, by the edge middleware (core.edge).
    "DEFAULT_PARSER_CLASSES": [
        "tagging_platform.parsers.EdgeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tagging Platform API",
    "DESCRIPTION": "Company-wide text tagging: taxonomy, needs, models, serving and monitoring.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # No CDN here: the docs pages load their JS/CSS from the vendored sidecar package.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation documents the errors the platform can answer with (one JSON shape).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tagging_platform.schema.document_error_responses",
    ],
}
# registry: one enum name for the production/candidate alias choices used by several serializers.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["ModelAliasNameEnum"] = (
    "registry.models.AliasName"
)
# Many models have a `status`; name each choice set after its class so the schema stays readable.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        f"{name}Enum": f"{module}.{name}"
        for module, name in [
            ("tenants.models", "NeedStatus"),
            ("taxonomy.models", "LabelStatus"),
            ("registry.models", "VersionStatus"),
            ("serving.models", "ItemStatus"),
            ("serving.models", "DeliveryStatus"),
            ("serving.models", "ChunkStatus"),
            ("records.models", "ProblemStatus"),
            ("taxonomy.models", "LabelSetKind"),
        ]
    }
)
# Training runs and batch jobs share one lifecycle (queued, running, succeeded, failed, cancelled).
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["JobStatusEnum"] = "registry.models.RunStatus"
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "ReviewDecisionEnum": "review.models.Decision",
        "SignOffEnum": "review.models.SignOff",
        "CaseCauseEnum": "review.models.Cause",
        "CaseStatusEnum": "review.models.CaseStatus",
        "RoundStatusEnum": "review.models.RoundStatus",
        "LabelSetKindEnum": "taxonomy.models.LabelSetKind",
    }
)

# --- Health ---------------------------------------------------------------------------------
READYZ_TASK_TIMEOUT = envfloat("READYZ_TASK_TIMEOUT", 5.0, minimum=0.1)
#: How long /readyz collects the workers' answers to "which queues do you consume?".
READYZ_INSPECT_TIMEOUT = envfloat("READYZ_INSPECT_TIMEOUT", 1.0, minimum=0.1)
#: ...and how long each web process reuses that answer (0: ask on every probe).
READYZ_QUEUES_CACHE_SECONDS = envfloat("READYZ_QUEUES_CACHE_SECONDS", 5.0, minimum=0.0)

# --- Serving limits -------------------------------------------------------------------------
TAG_MAX_ITEMS = envint("TAG_MAX_ITEMS", 64, minimum=1)
TAG_MAX_TEXT_CHARS = envint("TAG_MAX_TEXT_CHARS", 20000, minimum=1)
UPLOAD_MAX_BYTES = envint("UPLOAD_MAX_BYTES", 20 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Uploads are kept in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, then spooled to disk; a file over
# UPLOAD_MAX_BYTES is only measured (core.uploads), and refused with a 413.
FILE_UPLOAD_HANDLERS = [
    "core.uploads.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
PREDICTION_LOG_SAMPLE_RATE = envfloat("PREDICTION_LOG_SAMPLE_RATE", 1.0, minimum=0.0)
MODEL_CACHE_SIZE = envint("MODEL_CACHE_SIZE", 8, minimum=1)
#: Time a serving process (web worker, online pool process) spends loading live models at start;
#: what is left loads on first use. Online pools warm on a thread after reporting ready.
SERVING_WARM_SECONDS = envfloat("SERVING_WARM_SECONDS", 20.0, minimum=0.0)
ALIAS_POLL_SECONDS = envfloat("ALIAS_POLL_SECONDS", 2.0, minimum=0.0)
# Serving runtime and channels (see README "Serving").
API_KEY_CACHE_SECONDS = envfloat("API_KEY_CACHE_SECONDS", 5.0, minimum=0.0)
RESULT_CACHE_SECONDS = envint("RESULT_CACHE_SECONDS", 24 * 3600, minimum=0)
# With the cache Redis down: `open` serves uncounted (logged), `closed` answers 503 + Retry-After.
QUOTA_WHEN_REDIS_DOWN = (envstr("QUOTA_WHEN_REDIS_DOWN") or "open").strip().lower()
if QUOTA_WHEN_REDIS_DOWN not in {"open", "closed"}:
    raise ImproperlyConfigured(
        f"QUOTA_WHEN_REDIS_DOWN={QUOTA_WHEN_REDIS_DOWN!r} must be `open` or `closed`."
    )
REDIS_OUTAGE_RETRY_AFTER_SECONDS = envint("REDIS_OUTAGE_RETRY_AFTER_SECONDS", 5, minimum=1)
SYNC_QUEUE_TIMEOUT_SECONDS = envfloat("SYNC_QUEUE_TIMEOUT_SECONDS", 10.0, minimum=0.1)
SYNC_QUEUE_MAX_DEPTH = envint("SYNC_QUEUE_MAX_DEPTH", 500, minimum=1)
STREAM_MAX_ITEMS = envint("STREAM_MAX_ITEMS", 1000, minimum=1)
WEBHOOK_MAX_ATTEMPTS = envint("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
WEBHOOK_BACKOFF_SECONDS = envfloat("WEBHOOK_BACKOFF_SECONDS", 2.0, minimum=0.0)
WEBHOOK_BACKOFF_MAX_SECONDS = envfloat("WEBHOOK_BACKOFF_MAX_SECONDS", 900.0, minimum=0.0)
WEBHOOK_TIMEOUT_SECONDS = envfloat("WEBHOOK_TIMEOUT_SECONDS", 5.0, minimum=0.1)
BATCH_CHUNK_SIZE = envint("BATCH_CHUNK_SIZE", 250, minimum=1)
# An upload's items are stored (COPY) and queued in slices that grow from one chunk to this many,
# so the first chunks are tagged while the rest is still being stored; a job whose storing made
# no progress for BATCH_INGEST_STALL_SECONDS (its web process died) is failed by the sweeper.
BATCH_INGEST_SLICE_CHUNKS = envint("BATCH_INGEST_SLICE_CHUNKS", 32, minimum=1)
BATCH_INGEST_STALL_SECONDS = envfloat("BATCH_INGEST_STALL_SECONDS", 300.0, minimum=1.0)
# A claimed chunk's lease is sized to the job's measured seconds per chunk (x FACTOR, within
# MIN..MAX); BATCH_CHUNK_LEASE_SECONDS is the lease before anything was measured for the need.
BATCH_CHUNK_LEASE_SECONDS = envfloat("BATCH_CHUNK_LEASE_SECONDS", 120.0, minimum=0.1)
BATCH_CHUNK_LEASE_FACTOR = envfloat("BATCH_CHUNK_LEASE_FACTOR", 3.0, minimum=1.0)
BATCH_CHUNK_LEASE_MIN_SECONDS = envfloat("BATCH_CHUNK_LEASE_MIN_SECONDS", 15.0, minimum=0.1)
BATCH_CHUNK_LEASE_MAX_SECONDS = envfloat("BATCH_CHUNK_LEASE_MAX_SECONDS", 1800.0, minimum=0.1)
#: A chunk claimed this many times without committing (its worker died each time) fails the job.
BATCH_CHUNK_MAX_ATTEMPTS = envint("BATCH_CHUNK_MAX_ATTEMPTS", 5, minimum=1)
#: The stale-chunk sweeper's beat interval, and how long a job may show no chunk activity before
#: its pending chunks are sent again (their messages may be stranded with a dead worker).
BATCH_SWEEP_SECONDS = envfloat("BATCH_SWEEP_SECONDS", 30.0, minimum=0.1)
# On the online queue: a backlog of chunks on the batch queue must not delay the sweeper.
CELERY_BEAT_SCHEDULE["serving: re-queue stale batch chunks"] = _beat(
    "workers.tasks.batch.sweep_stale_chunks",
    BATCH_SWEEP_SECONDS,
    expires=BATCH_SWEEP_SECONDS,
    queue="online",
)
#: Send result-cache entries and log lines with the next Redis pipeline (write-behind) instead of
#: inline; a quiet process sends them after WRITE_BEHIND_SECONDS (serving/redis_pool.py).
SERVING_ASYNC_WRITES = envbool("SERVING_ASYNC_WRITES", True)
# Shadow mode (retraining): per-process cap on items a challenger scores beside the champion,
# the bound on the Redis list they wait in, and how often the per-need shares are re-read.
SHADOW_MAX_ITEMS_PER_SECOND = envfloat("SHADOW_MAX_ITEMS_PER_SECOND", 20.0, minimum=0.0)
SHADOW_BUFFER_MAX = envint("SHADOW_BUFFER_MAX", 10000, minimum=1)
SHADOW_REFRESH_SECONDS = envfloat("SHADOW_REFRESH_SECONDS", 30.0, minimum=0.0)
SHADOW_DRAIN_SECONDS = envfloat("SHADOW_DRAIN_SECONDS", 30.0, minimum=1.0)
WRITE_BEHIND_SECONDS = envfloat("WRITE_BEHIND_SECONDS", 0.05, minimum=0.001)

# --- Demo -----------------------------------------------------------------------------------
DEMO_ADMIN_USERNAME = envstr("DEMO_ADMIN_USERNAME", "admin")
DEMO_ADMIN_PASSWORD = envstr("DEMO_ADMIN_PASSWORD", "admin")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "tagging_platform.middleware.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Monitoring -----------------------------------------------------------------------------
FEEDBACK_MAX_EVENTS = envint("FEEDBACK_MAX_EVENTS", 1000, minimum=1)
MONITORING_WEBHOOK_TIMEOUT = envfloat("MONITORING_WEBHOOK_TIMEOUT", 5.0, minimum=0.1)
#: /metrics names every tenant's needs and volumes. Outside DEBUG it needs the bearer token
#: (`Authorization: Bearer <token>`) and answers 403 while none is configured; METRICS_ALLOWED_IPS
#: restricts it by client IP as well. The same token shows /readyz's details.
METRICS_ALLOWED_IPS = envlist("METRICS_ALLOWED_IPS", [])
METRICS_BEARER_TOKEN = envstr("METRICS_BEARER_TOKEN", "")
METRICS_REQUIRE_TOKEN = envbool("METRICS_REQUIRE_TOKEN", not DEBUG)
# Retraining: per-need policies (K accepted samples, a schedule) checked hourly; shadow-mode items
# scored beside the champion off the hot path.
CELERY_BEAT_SCHEDULE["retraining: check retrain policies"] = _beat(
    "workers.tasks.training.check_retrain_policies",
    _crontab(minute="25"),
    expires=3000,
    queue="training",
)
CELERY_BEAT_SCHEDULE["retraining: score shadow traffic"] = _beat(
    "workers.tasks.monitoring.drain_shadow",
    SHADOW_DRAIN_SECONDS,
    expires=SHADOW_DRAIN_SECONDS,
    queue="monitoring",
)
