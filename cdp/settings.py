"""Settings, read from the environment (12-factor).

Nothing needs to be set to try the product: without DATABASE_URL it uses a SQLite file under ./var and without
CELERY_BROKER_URL tasks run eagerly in the web process. Production sets DATABASE_URL (PostgreSQL),
CELERY_BROKER_URL (Redis), SECRET_KEY and ALLOWED_HOSTS.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CDP_VAR_DIR", BASE_DIR / "var"))

DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for local use).")
    SECRET_KEY = "insecure-local-development-key"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "cdp",
    "ingestion",
    "profiles",
    "consent",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "cdp.urls"
WSGI_APPLICATION = "cdp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "cdp" / "templates"],
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

# --- Database -------------------------------------------------------------------------------------------
# The embedded default is a SQLite file; WAL and IMMEDIATE transactions keep the web process and an eager
# worker from tripping over each other's locks.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'cdp.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The search box's typo-tolerant names (pg_trgm's % in profiles.selectors.name_word_corrections): a word of
    # the term is taken for a word of the names' dictionary at least this similar (or one slip away).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "options", f"-c pg_trgm.similarity_threshold={os.environ.get('CDP_NAME_SEARCH_SIMILARITY', '0.45')}"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))

# A new key is shown once in a message; keep messages server-side, not in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Requests up to the records API limit (5 MB) are read into memory; larger ones are answered 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- API ------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cdp.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["cdp.permissions.IsStaffUser"],
    "DEFAULT_PARSER_CLASSES": ["cdp.parsers.StrictJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cdp.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Customer Data Platform API",
    "DESCRIPTION": "Source records in, unified customer profiles out.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["cdp.permissions.IsStaffUser"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cdp.schema.error_responses",
        "ingestion.api.tracking_schema.tracking_bodies",
    ],
}

# --- Celery ---------------------------------------------------------------------------------------------
CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Celery closes the worker's database connection after every task unless told to reuse it: each batch would
# start a new PostgreSQL backend (a fork, authentication, cold catalog caches). Reused for up to this many
# tasks; cdp/celery.py closes it sooner once older than CONN_MAX_AGE or failed, as Django does per request.
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "100"))
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Domain ---------------------------------------------------------------------------------------------
# The processing flow after a record is stored raw: every step receives the same batch of normalised
# items, in this order. Later steps (suppression, consent) slot in here without the apps importing each other.
CDP_PIPELINE = [
    "profiles.pipeline.claim",  # the identifier locks, up front; items another worker holds are deferred
    "consent.pipeline.drop_suppressed",  # erased people stay erased: before anything is stored
    "profiles.pipeline.resolve",
    "consent.intake.statements_record",  # consents of records, tracked preferences, GPC: after resolution
]
# Checks of the parts of a record other apps own, at intake (a record's consents): errors reject the record.
CDP_RECORD_CHECKS = ["consent.intake.record_consents_check"]
# Steps run on records and messages rejected at intake before they are kept in the quarantine.
CDP_INTAKE_REJECTED_STEPS = ["consent.pipeline.drop_suppressed"]
# Segment's context.consent.categoryPreferences on tracked events: category (any case) -> purpose on the web
# channel, or {"purpose": ..., "channel": ... or None for every channel}. Other categories are ignored (logged).
CDP_SEGMENT_CONSENT_CATEGORIES = {
    "Advertising": "marketing",
    "Marketing": "marketing",
    "Targeting": "marketing",
    "Analytics": "analytics",
    "Performance": "analytics",
    "Personalization": "personalisation",
    "Personalisation": "personalisation",
    "Functional": "personalisation",
    "DataSharing": {"purpose": "sale_sharing", "channel": None},
}
# How many records one resolution transaction handles; bounds lock counts and memory per worker. 500, not
# 250: fewer transactions and per-chunk queries. bench.ingest at 100,000 records, 2 workers: faster in each of
# five interleaved pairs of runs, by 1.5 % to 26 % (median 7 %; bench/README.md, 7 December 2026).
CDP_RESOLVE_CHUNK_SIZE = int(os.environ.get("CDP_RESOLVE_CHUNK_SIZE", "500"))
# Python's garbage collector in web processes and workers (cdp/collector.py): collections of the youngest
# generation every this many net allocations, then of each older one every so many of the younger.
CDP_GC_THRESHOLDS = tuple(int(part) for part in os.environ.get("CDP_GC_THRESHOLDS", "50000,20,20").split(","))
# Probabilistic matching (profiles/services/matching.py): the model is estimated from the data once this many
# live records exist (and again as the data doubles); a probabilistic link never puts more records of one
# source on a profile than this (it goes to review instead).
CDP_MATCH_TRAIN_MIN_RECORDS = int(os.environ.get("CDP_MATCH_TRAIN_MIN_RECORDS", "1000"))
CDP_MATCH_MAX_RECORDS_PER_SOURCE = int(os.environ.get("CDP_MATCH_MAX_RECORDS_PER_SOURCE", "10"))
# Each process looks this often (seconds, at most) whether an erasure completed, to forget its memos of
# personal data (cdp/memory.py).
CDP_MEMORY_CHECK_SECONDS = float(os.environ.get("CDP_MEMORY_CHECK_SECONDS", "1"))
# Phone numbers without a country code are read in this region unless their source says otherwise.
CDP_DEFAULT_PHONE_REGION = os.environ.get("CDP_DEFAULT_PHONE_REGION", "US")
# Sections the Customer 360 page (the profile in the admin) shows from apps above profiles (cdp/panels.py).
CDP_PROFILE_PANELS = ["cdp.panels.consent_state", "consent.admin.profile_access_panel"]
# Called on every read of one profile through the API or the admin, (*, request, profile, view) -> None or a
# reason to refuse it: the staff access log, and no restricted profile for source systems.
CDP_PROFILE_READ_HOOKS = [
    "consent.dsr.profile_restriction_refusal",
    "consent.services.profile_access_record",
]
# Applied to profile lists, (*, request, queryset) -> queryset: source systems get no restricted profiles.
CDP_PROFILE_LIST_FILTERS = ["consent.dsr.profiles_unrestricted"]
# Called with (profile_ids=[original, new], actor=...) inside an unmerge, by apps above profiles: restrictions
# (opt-outs, objections) recorded for the person stay with both halves.
CDP_PROFILE_SPLIT_HOOKS = ["consent.services.consent_profile_split"]
# PII masking per role and attribute: profiles.masking.DEFAULT_PII_MASKING unless CDP_PII_MASKING is set here.

# Key of the suppression list's HMACs (erased identifiers). Its own secret, not SECRET_KEY: rotating the
# session key must not forget who was erased, and a leaked SECRET_KEY must not reveal it. Changing it empties
# the list in effect, so it is set once per installation.
CDP_SUPPRESSION_KEY = os.environ.get("CDP_SUPPRESSION_KEY", "")
if not CDP_SUPPRESSION_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("CDP_SUPPRESSION_KEY must be set when DEBUG is off.")
    CDP_SUPPRESSION_KEY = "suppression:" + SECRET_KEY

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
