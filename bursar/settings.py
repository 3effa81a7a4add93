"""Bursar settings: one module, every deployment choice read from the environment.

``.env.example`` lists each variable with its default. The defaults run with no
external service (SQLite, tasks in-process); production sets ``DATABASE_URL``,
``CELERY_BROKER_URL``, ``SECRET_KEY`` and ``ALLOWED_HOSTS``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import dj_database_url
import django_stubs_ext
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from bursar.env import env_bool, env_choice, env_int, env_list, env_rates, env_str

# Lets annotated generics such as ``ModelAdmin[Customer]`` run (django-stubs-ext); DRF's
# classes are patched in GovernanceConfig.ready(), once settings are complete.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

# A development key is only ever accepted with DEBUG on; production must set its own.
_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = _DEV_SECRET_KEY

# Encrypts stored gateway admin tokens; defaults to a key derived from SECRET_KEY.
CREDENTIALS_KEY = env_str("CREDENTIALS_KEY")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.openid_connect",
    "governance",
    "billing",
    "ingest",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "bursar.urls"
WSGI_APPLICATION = "bursar.wsgi.application"

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
                "bursar.context.navigation",
            ],
            "builtins": ["bursar.templatetags.bursar"],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# SQLite is the embedded default; PostgreSQL (psycopg 3) is production and CI.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    _database = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if _database["ENGINE"] not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
    raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or sqlite:// URL")
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default serves web and in-process tasks from one file: wait for
    # locks instead of failing, and use WAL so readers never block the writer.
    _database["CONN_MAX_AGE"] = 0
    _database.setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "bursar.staticfinders.PlotlyFinder",  # plotly.js from the pinned package, no CDN
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "account_login"

# --- Sign-in (django-allauth) ---------------------------------------------------------
# Local accounts are invitation-only (an admin invites by email; no open sign-up). SSO
# providers switch on when their client id and secret are set. See README, "Sign-in".
ACCOUNT_ADAPTER = "governance.auth.InvitationOnlyAccountAdapter"
SOCIALACCOUNT_ADAPTER = "governance.auth.SsoAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_UNIQUE_EMAIL = True
# Failed sign-ins are limited per IP and per account (allauth's limits, kept in the cache:
# set CACHE_URL to a Redis URL when several processes serve the site). Password resets and
# reauthentication are limited too. "5/5m/key": 5 failures per account per 5 minutes.
ACCOUNT_RATE_LIMITS = {
    "login_failed": env_str("LOGIN_RATE_LIMIT", "10/m/ip,5/5m/key"),
    "login": "30/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reauthenticate": "10/m/user",
}
# "SSO only": no passwords at all (local sign-in, reset and change are switched off).
SSO_ONLY = env_bool("SSO_ONLY", False)
SOCIALACCOUNT_ONLY = SSO_ONLY
# Sign-in (SSO and invitations) only for these email domains; empty allows any.
ALLOWED_EMAIL_DOMAINS = [domain.lower() for domain in env_list("ALLOWED_EMAIL_DOMAINS", [])]
# An SSO user who was not invited is refused, unless this makes them a viewer.
SSO_AUTO_PROVISION_VIEWERS = env_bool("SSO_AUTO_PROVISION_VIEWERS", False)
if SSO_AUTO_PROVISION_VIEWERS and not ALLOWED_EMAIL_DOMAINS:
    # With Google or GitHub, anyone on the internet would become a viewer.
    raise ImproperlyConfigured("SSO_AUTO_PROVISION_VIEWERS needs ALLOWED_EMAIL_DOMAINS (whose people may come in)")
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # linking by email is done by the adapter, verified only
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, object]] = {}
if env_str("SSO_GOOGLE_CLIENT_ID"):
    SOCIALACCOUNT_PROVIDERS["google"] = {
        "APPS": [{"client_id": env_str("SSO_GOOGLE_CLIENT_ID"), "secret": env_str("SSO_GOOGLE_CLIENT_SECRET")}],
        "SCOPE": ["openid", "email", "profile"],
        "OAUTH_PKCE_ENABLED": True,
    }
if env_str("SSO_GITHUB_CLIENT_ID"):
    SOCIALACCOUNT_PROVIDERS["github"] = {
        "APPS": [{"client_id": env_str("SSO_GITHUB_CLIENT_ID"), "secret": env_str("SSO_GITHUB_CLIENT_SECRET")}],
        "SCOPE": ["read:user", "user:email"],
    }
if env_str("SSO_OIDC_CLIENT_ID"):
    if not env_str("SSO_OIDC_SERVER_URL"):
        raise ImproperlyConfigured("SSO_OIDC_SERVER_URL (the issuer URL) must be set with SSO_OIDC_CLIENT_ID")
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "APPS": [
            {
                "provider_id": env_str("SSO_OIDC_PROVIDER_ID", "oidc"),
                "name": env_str("SSO_OIDC_NAME", "Single sign-on"),
                "client_id": env_str("SSO_OIDC_CLIENT_ID"),
                "secret": env_str("SSO_OIDC_CLIENT_SECRET"),
                "settings": {"server_url": env_str("SSO_OIDC_SERVER_URL"), "oauth_pkce_enabled": True},
            }
        ]
    }
if SSO_ONLY and not SOCIALACCOUNT_PROVIDERS:
    raise ImproperlyConfigured("SSO_ONLY needs at least one SSO provider (SSO_GOOGLE_*, SSO_GITHUB_* or SSO_OIDC_*)")
# Client IPs (rate limits) behind this many proxies that append to X-Forwarded-For.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
# MFA: TOTP (any authenticator app) with recovery codes, for local accounts. With SSO only
# there are no local accounts: the identity provider enforces its own MFA (allauth refuses
# the two together).
if not SSO_ONLY:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("allauth.socialaccount"), "allauth.mfa")
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Bursar")

# The cache holds sign-in rate limits and allauth's replay guards: per process by default,
# shared (Redis) when CACHE_URL is set.
if env_str("CACHE_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env_str("CACHE_URL")}}

# --- Security (safe by default; relaxed only by DEBUG or explicit variables) -----------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO", False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12, minimum=60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- Email ------------------------------------------------------------------------------
# Console backend by default (the embedded default prints mail); SMTP when EMAIL_ENABLED.
if env_bool("EMAIL_ENABLED", False):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = env_str("EMAIL_HOST")
    if not EMAIL_HOST:
        raise ImproperlyConfigured("EMAIL_HOST must be set when EMAIL_ENABLED is on")
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "bursar@localhost")

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
# No broker: the embedded default runs tasks in-process. With a broker, tasks are
# acknowledged late (a worker that dies mid-task leaves it for another) and every
# task is written to be safe to run twice.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    CELERY_BROKER_URL = "memory://"  # never reached; keeps Celery from probing localhost
# Deployments (and the test suite's worker) sharing one broker keep apart by queue name.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "expire-virtual-keys": {"task": "governance.expire_virtual_keys", "schedule": 60.0},
    "requeue-stale-ingest-batches": {"task": "ingest.requeue_stale_batches", "schedule": 30.0},
    "purge-processed-ingest-batches": {"task": "ingest.purge_processed_batches", "schedule": 3600.0},
    # At second 0 of every minute: period starts (local midnights) fall on whole minutes,
    # so keys blocked for the old period are active again within the minute it ends.
    "reconcile-budgets": {"task": "governance.reconcile_budgets", "schedule": crontab()},
    "retry-alert-deliveries": {"task": "governance.retry_alert_deliveries", "schedule": 30.0},
    # Nodes behind whose backoff has passed get the latest revision; drift is checked.
    "converge-config": {"task": "governance.converge_config", "schedule": 5.0},
}

# --- Ingest -----------------------------------------------------------------------------
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
# Limits what a gzip body may expand to (a small body can inflate a thousandfold).
INGEST_MAX_DECOMPRESSED_BYTES = env_int("INGEST_MAX_DECOMPRESSED_BYTES", 64 * 1024 * 1024, minimum=1024)
INGEST_MAX_EVENTS_PER_BATCH = env_int("INGEST_MAX_EVENTS_PER_BATCH", 50_000, minimum=1)
# A customer named by external_id that does not exist yet is created (name = the id);
# off: such events are stored unattributed, keeping the name in customer_ref.
INGEST_AUTO_CREATE_CUSTOMERS = env_bool("INGEST_AUTO_CREATE_CUSTOMERS", True)
# A worker stores up to this many pending batches in one transaction (one INSERT, one
# rollup upsert, one commit): fewer, larger statements under load; 1 batch when idle.
INGEST_BATCHES_PER_TRANSACTION = env_int("INGEST_BATCHES_PER_TRANSACTION", 30, minimum=1)
# Above this many unprocessed batches the endpoints answer 503 with Retry-After.
INGEST_MAX_PENDING_BATCHES = env_int("INGEST_MAX_PENDING_BATCHES", 20_000, minimum=1)
# Static bearer token Prometheus may use for /metrics (admin API tokens work too).
METRICS_TOKEN = env_str("METRICS_TOKEN")

# --- Budgets and alerts -------------------------------------------------------------------
# Prices and event costs are in US dollars. A budget in another currency is charged at
# these rates (units per 1 USD), e.g. "EUR=0.92,GBP=0.79"; a budget in a currency not
# listed here is refused.
EXCHANGE_RATES = {"USD": Decimal(1), **env_rates("EXCHANGE_RATES")}
# A forecast alert waits until this share of the period has passed, so the first
# minutes of a period (one early request) do not project a wild burn rate; 100 turns
# forecast alerts off.
BUDGET_FORECAST_MIN_ELAPSED_PERCENT = env_int("BUDGET_FORECAST_MIN_ELAPSED_PERCENT", 10, minimum=0)
# Webhook and Slack deliveries: per-attempt timeout and the number of tries (backoff
# doubles from 10 s with jitter: 10 s, 20 s, 40 s, ... capped at 15 min).
ALERT_DELIVERY_TIMEOUT_SECONDS = env_int("ALERT_DELIVERY_TIMEOUT_SECONDS", 10, minimum=1)
ALERT_DELIVERY_MAX_ATTEMPTS = env_int("ALERT_DELIVERY_MAX_ATTEMPTS", 8, minimum=1)

# --- Config push (Bursar -> gateway nodes) -----------------------------------------------
CONFIG_PUSH_TIMEOUT_SECONDS = env_int("CONFIG_PUSH_TIMEOUT_SECONDS", 5, minimum=1)
CONFIG_PUSH_CONCURRENCY = env_int("CONFIG_PUSH_CONCURRENCY", 16, minimum=1)  # nodes pushed at once
# A failing node is retried after 1 s, 2 s, 4 s ... up to this (with jitter).
CONFIG_PUSH_MAX_BACKOFF_SECONDS = env_int("CONFIG_PUSH_MAX_BACKOFF_SECONDS", 15, minimum=1)
# Routine changes wait this long so a burst makes one revision; hard-cap blocks do not wait.
CONFIG_COALESCE_SECONDS = env_int("CONFIG_COALESCE_SECONDS", 1, minimum=0)
# Nodes that are current are checked for drift (observe) this often, and repaired.
CONFIG_DRIFT_CHECK_SECONDS = env_int("CONFIG_DRIFT_CHECK_SECONDS", 300, minimum=10)

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "bursar.api.Pagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "bursar.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "governance.api.renderers.ScopedBrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "bursar.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Bursar API",
    "DESCRIPTION": "Cost accounting and governance for AI gateways.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from static files (drf-spectacular-sidecar), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "kind": name each choice set after what it is.
    "ENUM_NAME_OVERRIDES": {
        "AlertKindEnum": "governance.models.alerts.AlertKind",
        "AlertChannelKindEnum": "governance.models.alerts.AlertChannelKind",
        "GatewayNodeKindEnum": "governance.models.nodes.GatewayNodeKind",
    },
}

# --- Logging ----------------------------------------------------------------------------
# JSON lines by default (one object per record, structured fields via ``extra=``);
# LOG_FORMAT=text for humans. Secrets are never passed to a logger.
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", {"debug", "info", "warning", "error"}).upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "text" if DEBUG else "json", {"json", "text"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
