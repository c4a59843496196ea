"""Contexta settings: one module, every value from the environment with an embedded default.

Production differs only by environment (DATABASE_URL, CELERY_BROKER_URL, REDIS_URL, DJANGO_SECRET_KEY,
ALLOWED_HOSTS); there is no production-only code path. Debug is off unless DJANGO_DEBUG=1 (`make dev`).
Without DJANGO_SECRET_KEY the suite runs in local mode (CONTEXTA_LOCAL): a key generated under var/, plain
HTTP, and a loopback address only, which is what `make run` serves; with a key it is strict (HTTPS).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from apps.env import env_bool, env_choice, env_float, env_int, env_list, env_str, env_url, load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")

VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)
# Local mode: this machine only, over plain HTTP. The embedded default, until a secret key is configured.
LOCAL = env_bool("CONTEXTA_LOCAL", "DJANGO_SECRET_KEY" not in os.environ)


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key is not None:
        if len(key) < 50 or len(set(key)) < 5:
            raise ImproperlyConfigured(
                "DJANGO_SECRET_KEY must be at least 50 characters with 5 distinct ones"
            )
        return key
    if not LOCAL:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required unless CONTEXTA_LOCAL=1 (this machine only)"
        )
    # Embedded default: a random key kept under var/, so sessions survive restarts on this machine.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "apps.core",
    "apps.support",
    "apps.sentiment",
    "apps.recommender",
]

MIDDLEWARE = [
    "apps.core.middleware.ApiErrorMiddleware",  # first: every answer under /api/ is JSON, errors included
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "apps.core.throttles.WriteThrottleMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it answers locked-out logins with 429
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out username and address
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "apps.urls"
WSGI_APPLICATION = "apps.wsgi.application"
ASGI_APPLICATION = "apps.asgi.application"

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
                "apps.core.context_processors.navigation",
            ],
        },
    },
]


SQLITE_BUSY_TIMEOUT = env_int("SQLITE_BUSY_TIMEOUT", 30, minimum=1)  # seconds a writer waits for the lock


def _database() -> dict[str, object]:
    url = env_url(
        "DATABASE_URL",
        f"sqlite:///{VAR_DIR / 'contexta.sqlite3'}",
        schemes=("sqlite", "postgres", "postgresql", "pgsql"),
    )
    try:
        config: dict[str, object] = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Several processes (web, workers, beat) share the file. A deferred transaction that reads and then
        # writes fails at once with "database is locked" when another process writes meanwhile: SQLite does
        # not apply the busy timeout to that upgrade. IMMEDIATE takes the write lock at BEGIN, where the
        # timeout applies, so writers queue instead of failing.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "timeout": SQLITE_BUSY_TIMEOUT,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    env_url("REDIS_URL", REDIS_URL, schemes=("redis", "rediss"))
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Live updates (apps.core.live): Redis pub/sub across every process when REDIS_URL is set; otherwise the
# database layer, which carries them between the processes of one machine through a table.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "contexta-live"},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "apps.core.live_layer.DatabaseChannelLayer",
            "CONFIG": {"poll_interval": env_float("LIVE_POLL_SECONDS", 0.5, minimum=0.05)},
        }
    }
LIVE_STREAM_SECONDS = env_float("LIVE_STREAM_SECONDS", 300.0, minimum=1.0)  # then the browser reconnects
LIVE_KEEPALIVE_SECONDS = env_float("LIVE_KEEPALIVE_SECONDS", 15.0, minimum=0.1)
LIVE_COALESCE_SECONDS = env_float("LIVE_COALESCE_SECONDS", 0.5)
LIVE_RETRY_MS = 3000

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "core:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "apps.core.static_vendor.VendorFinder",  # vendor/plotly.min.js from the plotly package
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or LOCAL
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Security: strict unless local; a TLS-terminating proxy sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not LOCAL)
SESSION_COOKIE_SECURE = not LOCAL
CSRF_COOKIE_SECURE = not LOCAL
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if LOCAL else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not LOCAL
SECURE_HSTS_PRELOAD = not LOCAL
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every page (django-csp): only this site's own scripts, styles and images; no
# inline script or style, no framing, forms post only here. The API docs pages relax it (apps/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Proxies in front of the web process whose X-Forwarded-For to believe (0: the client is REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
# Rate limits on writes (apps/core/throttles.py) and logins (django-axes): see docs/configuration.md.
API_WRITE_RATE = env_str("API_WRITE_RATE", "120/min")
API_ANON_WRITE_RATE = env_str("API_ANON_WRITE_RATE", "30/min")
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("LOGIN_COOLOFF_MINUTES", 15.0, minimum=0.1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # the cache one needs Redis
AXES_CLIENT_IP_CALLABLE = "apps.core.throttles.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # lock-outs are still logged as warnings

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # a token, as `Authorization: Bearer <token>` or `Token <token>`
        "apps.core.api_auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "apps.core.api_schema.ContextaAutoSchema",
    # every list: {"count", "next", "previous", "results"}, `limit` (default PAGE_SIZE) and `offset`
    "DEFAULT_PAGINATION_CLASS": "apps.core.api_filters.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.api_errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.throttles.WriteThrottle"],
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    # DRF's defaults, with a JSON parser that bounds size and depth and refuses lone surrogates.
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Contexta API",
    # The docs' front page (links back to the app; authentication, errors, pagination, rate limits, times)
    # is apps.core.api_schema.API_DESCRIPTION, filled in with the settings above by the last hook.
    "DESCRIPTION": "",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.api_schema.describe_api",
    ],
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # the token pasted into Authorize survives a reload; #/tag/operation links open an operation
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "deepLinking": True},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # ENUM_NAME_OVERRIDES: filled from the apps' declarations (ContextaApp.api_enums) when core is ready.
    "ENUM_NAME_OVERRIDES": {},
}

# --- Celery -------------------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", "filesystem://", schemes=("filesystem", "redis", "rediss", "sqla+sqlite", "amqp")
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(BROKER_DIR / "control"),
        "polling_interval": 0.5,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_RESULT_BACKEND = None  # job state lives in database rows, not in a result backend
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 15 * 60, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 5
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "core.run_job": {"queue": "training"},
    "*.inference.*": {"queue": "inference"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The beat schedule is the apps' declared periodic tasks (ContextaApp.periodic_tasks), set when core is ready.
CELERY_TASK_ALWAYS_EAGER = False  # tests turn it on for unit tests only; the product always uses workers

QUEUES = ("default", "inference", "training")
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 10, minimum=1)
WORKER_STALE_SECONDS = env_int("WORKER_STALE_SECONDS", 60, minimum=5)
JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 600, minimum=10)
# A running job's claim is renewed every WORKER_HEARTBEAT_SECONDS by the process holding it; unrenewed this
# long, the holder is dead and the job is taken over (redelivery, or the reaper's next tick).
JOB_LEASE_SECONDS = env_int(
    "JOB_LEASE_SECONDS", 3 * WORKER_HEARTBEAT_SECONDS, minimum=2 * WORKER_HEARTBEAT_SECONDS
)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 2, minimum=1)
# Queued or running jobs of one kind, per user and in all (a kind may declare lower ones).
JOB_QUOTA_PER_USER = env_int("JOB_QUOTA_PER_USER", 3, minimum=1)
JOB_QUOTA_TOTAL = env_int("JOB_QUOTA_TOTAL", 10, minimum=1)
TRAINING_TIME_LIMIT = env_int("TRAINING_TIME_LIMIT", 4 * 3600, minimum=60)

# --- ML -----------------------------------------------------------------------------------------------
MODEL_STORE = Path(env_str("MODEL_STORE", str(VAR_DIR / "models"))).resolve()
MODEL_STORE.mkdir(parents=True, exist_ok=True)
_default_data = BASE_DIR.parent / "shared" / "data"
DATA_DIR = Path(env_str("DATA_DIR", str(_default_data) if _default_data.is_dir() else str(VAR_DIR / "data")))
ML_DEVICE = env_str("ML_DEVICE", "cpu")
if ML_DEVICE not in {"cpu", "cuda"} and not ML_DEVICE.startswith("cuda:"):
    raise ImproperlyConfigured(f"ML_DEVICE must be cpu, cuda or cuda:N, got {ML_DEVICE!r}")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# --- Processes (run_suite, bootstrap) --------------------------------------------------------------------
BIND = env_str("BIND", "127.0.0.1:8000")
if LOCAL and BIND.rpartition(":")[0].strip("[]") not in ("127.0.0.1", "localhost", "::1"):
    raise ImproperlyConfigured(
        f"BIND={BIND}: local mode (no DJANGO_SECRET_KEY) serves this machine only, over plain HTTP. Bind "
        "127.0.0.1, or set DJANGO_SECRET_KEY and ALLOWED_HOSTS for a deployment behind HTTPS"
    )
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", 2, minimum=1)
# The first admin, created by `bootstrap` when there is no superuser; without a password one is generated
# and printed once.
CONTEXTA_ADMIN_USER = env_str("CONTEXTA_ADMIN_USER", "admin")
CONTEXTA_ADMIN_EMAIL = env_str("CONTEXTA_ADMIN_EMAIL", "admin@localhost")
CONTEXTA_ADMIN_PASSWORD = env_str("CONTEXTA_ADMIN_PASSWORD", "")
if CONTEXTA_ADMIN_PASSWORD and len(CONTEXTA_ADMIN_PASSWORD) < 8:
    raise ImproperlyConfigured("CONTEXTA_ADMIN_PASSWORD must be at least 8 characters")

# --- Sentiment ----------------------------------------------------------------------------------------
# Classifier backend for scoring: auto (int8 ONNX when available, chosen in ml), onnx-int8 or torch-fp32.
SENTIMENT_BACKEND = env_choice("SENTIMENT_BACKEND", "auto", choices=("auto", "onnx-int8", "torch-fp32"))
SENTIMENT_ALERT_EVAL_SECONDS = env_int("SENTIMENT_ALERT_EVAL_SECONDS", 300, minimum=10)
SENTIMENT_DELIVERY_BASE_DELAY = env_int("SENTIMENT_DELIVERY_BASE_DELAY", 30, minimum=1)
SENTIMENT_DELIVERY_MAX_DELAY = env_int("SENTIMENT_DELIVERY_MAX_DELAY", 3600, minimum=1)
SENTIMENT_DELIVERY_MAX_ATTEMPTS = env_int("SENTIMENT_DELIVERY_MAX_ATTEMPTS", 8, minimum=1)
SENTIMENT_DELIVERY_LEASE = env_int("SENTIMENT_DELIVERY_LEASE", 120, minimum=10)
SENTIMENT_WEBHOOK_TIMEOUT = env_float("SENTIMENT_WEBHOOK_TIMEOUT", 10.0, minimum=0.1)
# The address people reach the dashboard at, for links in alert e-mails and webhooks.
SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000", schemes=("http", "https")).rstrip("/")


# --- Outbound requests --------------------------------------------------------------------------------
# Webhooks, Slack alerts and feed polls refuse internal addresses (apps/core/outbound.py). These CIDRs are
# allowed although internal, e.g. "10.20.0.0/16,192.168.1.7"; cloud metadata endpoints never are.
def _cidrs(name: str) -> list[str]:
    import ipaddress

    try:
        return [str(ipaddress.ip_network(value)) for value in env_list(name, [])]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be comma-separated CIDRs like 10.0.0.0/8: {exc}") from None


OUTBOUND_ALLOW_NETWORKS = _cidrs("OUTBOUND_ALLOW_NETWORKS")

# --- Mail ---------------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG or LOCAL
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "contexta@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes logs every login at INFO; its lock-outs are warnings.
    "loggers": {"axes": {"level": "WARNING"}},
}
