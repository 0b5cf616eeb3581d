"""Modelvault settings: every value comes from the environment.

The defaults are the embedded set-up (SQLite and artifact files under VAR_DIR, Celery tasks
run eagerly after commit, e-mail written to files), which needs no service. DATABASE_URL,
CELERY_BROKER_URL and ARTIFACT_STORAGE=s3 switch to the production parts; docs/operations.md
lists every variable.
"""

import contextlib
import os
import secrets
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

from config.files import DIR_MODE, FILE_MODE, default_var_dir, make_dirs

# The folder holding the packages: the checkout, or site-packages when installed from the
# wheel. Templates and static files are package data of config/, so they come with either.
BASE_DIR = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None


def env_count(name: str, default: int) -> int:
    value = env_int(name, default)
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be 0 or more, not {value}")
    return value


def env_choice(name: str, default: str, choices: Sequence[str]) -> str:
    value = env_str(name) or default
    if value not in choices:
        named = f"{', '.join(choices[:-1])} or {choices[-1]}"
        raise ImproperlyConfigured(f"{name} must be {named}, not {value!r}")
    return value


def env_positive(name: str, default: int) -> int:
    value = env_int(name, default)
    if value < 1:
        raise ImproperlyConfigured(f"{name} must be 1 or more, not {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# Under DEBUG (`make run`) a 404 is still the product's own page (config/middleware.py);
# true shows Django's technical 404 page (the URL patterns) instead. A 500 under DEBUG is
# Django's technical page with the traceback, for the developer; without DEBUG, 500.html.
DEBUG_TECHNICAL_404 = env_bool("DEBUG_TECHNICAL_404", False)

# Everything the embedded default writes lives here: database, artifacts, mail, temp files.
# The folders the server makes get mode 0750 and its files 0640 (config/files.py). The
# default is var/ in the checkout, or var/ in the current folder when installed from the
# wheel (never site-packages: an upgrade replaces it; docs/operations.md).
VAR_DIR = Path(env_str("VAR_DIR", str(default_var_dir()))).resolve()


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # The embedded default (make run, DEBUG on) keeps a random key of its own so that no
    # secret is ever committed and sessions survive a restart.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        make_dirs(VAR_DIR)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "ninja",  # serves the API docs' Swagger files from static/, never from a CDN
    "guardian",
    "simple_history",
    "axes",
    "csp",
    "registry",
    "approvals",
    "catalog",
    "notifications",
    "api",
    "mlflow_api",
    "sso",
]

MIDDLEWARE = [
    # First: /healthz and /readyz answer probes by the node's address, over plain HTTP.
    "config.health.HealthChecks",
    # Then /metrics, and the timing of every other request (config/metrics.py).
    "config.metrics.RequestMetrics",
    # Second: the request id and log line of every request but the probes'.
    "config.requestlog.RequestLog",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.RefuseUnstorableURLs",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "config.middleware.ProductNotFoundPage",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
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

# Database: SQLite in VAR_DIR unless DATABASE_URL names another (postgres://..., or a
# sqlite:///path, which gets the same options as the embedded default).
_SQLITE_OPTIONS = {
    # IMMEDIATE: a writing transaction takes the write lock up front, so two writers queue
    # (timeout) instead of failing to upgrade a read lock.
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASE_URL = env_str("DATABASE_URL")
# How long a server thread (or a Celery worker) keeps its database connection, in seconds;
# 0 closes it after each request. A new PostgreSQL connection plans every statement afresh:
# the first ten runs of a statement on it (five before it is prepared, then five custom
# plans) cost two to three times a run of the prepared plan, and a connection's first
# request tens of milliseconds. Kept a minute, every thread paid that each minute.
DATABASE_CONN_MAX_AGE = env_count("DATABASE_CONN_MAX_AGE", 600)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=DATABASE_CONN_MAX_AGE)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        # What the URL's query sets (?timeout=60) wins over the defaults.
        DATABASES["default"]["OPTIONS"] = {
            **_SQLITE_OPTIONS,
            **DATABASES["default"].get("OPTIONS", {}),
        }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Server-side parameters, and a statement run this many times on a connection is
        # prepared there: the same SQL (a queryset of one shape gives one text) is then
        # neither parsed nor planned again. 0 turns preparing off (PgBouncer before 1.21 in
        # transaction mode cannot keep prepared statements).
        _prepare = env_count("DATABASE_PREPARE_THRESHOLD", 5)
        # Left to itself (plan_cache_mode=auto), PostgreSQL plans a prepared statement
        # again for the values of each of its first five runs, and of every run for good
        # where it estimates the one plan dearer: the list of models and the org-wide tag
        # search were planned on every request, 1-2 ms each. One plan per statement
        # measured faster on every read of the API; `auto` gives the choice back.
        DATABASE_PLAN_CACHE_MODE = env_choice(
            "DATABASE_PLAN_CACHE_MODE",
            "force_generic_plan",
            ("force_generic_plan", "auto", "force_custom_plan"),
        )
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options.update(server_side_binding=True, prepare_threshold=_prepare or None)
        if DATABASE_PLAN_CACHE_MODE != "auto":
            # A setting of the session, sent when it opens (with the URL's own ?options=).
            told = _options.get("options", "")
            _options["options"] = f"{told} -c plan_cache_mode={DATABASE_PLAN_CACHE_MODE}".strip()
else:
    make_dirs(VAR_DIR)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "modelvault.sqlite3",
            "OPTIONS": dict(_SQLITE_OPTIONS),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out login before any password is checked (django-axes).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous users see nothing
GUARDIAN_MONKEY_PATCH_USER = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "catalog:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

# Artifact storage: blobs are content-addressed and written through Django's storage API.
ARTIFACT_STORAGE = env_str("ARTIFACT_STORAGE", "filesystem")
ARTIFACT_ROOT = Path(env_str("ARTIFACT_ROOT", str(VAR_DIR / "artifacts"))).resolve()
# Where uploads are staged while they stream and hash (for the filesystem backend, a folder
# inside ARTIFACT_ROOT, so that moving a finished upload into place is one rename).
ARTIFACT_TMP_DIR = Path(env_str("ARTIFACT_TMP_DIR", str(VAR_DIR / "tmp"))).resolve()
ARTIFACT_MAX_SIZE = env_int("ARTIFACT_MAX_SIZE", 50 * 1024**3)
# Uploads are staged, and large downloads read, with O_DIRECT where the filesystem allows
# it (registry/directio.py).
ARTIFACT_DIRECT_IO = env_bool("ARTIFACT_DIRECT_IO", True)
# Beat's hourly sweep removes what uploads cut off by a killed server left (staging files,
# S3 multipart uploads and temporary objects) once last written this many seconds ago.
ARTIFACT_SWEEP_AFTER = env_int("ARTIFACT_SWEEP_AFTER", 24 * 3600)
# S3 only: downloads from the API and the UI answer with a redirect to a presigned URL of
# the object, valid this many seconds (SigV4 allows at most 7 days), instead of streaming it.
ARTIFACT_DOWNLOAD_REDIRECT = env_bool("ARTIFACT_DOWNLOAD_REDIRECT", False)
ARTIFACT_DOWNLOAD_REDIRECT_SECONDS = env_positive("ARTIFACT_DOWNLOAD_REDIRECT_SECONDS", 300)
if ARTIFACT_DOWNLOAD_REDIRECT_SECONDS > 7 * 24 * 3600:
    raise ImproperlyConfigured("ARTIFACT_DOWNLOAD_REDIRECT_SECONDS must be at most 604800")
if ARTIFACT_DOWNLOAD_REDIRECT and ARTIFACT_STORAGE != "s3":
    raise ImproperlyConfigured("ARTIFACT_DOWNLOAD_REDIRECT=true needs ARTIFACT_STORAGE=s3")

if ARTIFACT_STORAGE == "filesystem":
    _artifact_backend = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": ARTIFACT_ROOT, "base_url": None},
    }
elif ARTIFACT_STORAGE == "s3":
    _artifact_backend = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
            "location": env_str("AWS_LOCATION", "modelvault"),
            "default_acl": None,
            "file_overwrite": True,
            "querystring_auth": True,
        },
    }
    if not _artifact_backend["OPTIONS"]["bucket_name"]:
        raise ImproperlyConfigured("ARTIFACT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME")
else:
    raise ImproperlyConfigured(
        f"ARTIFACT_STORAGE must be filesystem or s3, not {ARTIFACT_STORAGE!r}"
    )

# Uploads Django itself stores (FileSystemStorage) get the modes of config/files.py, as do
# artifact blobs, their folders and the staging folder (registry/storage.py).
FILE_UPLOAD_PERMISSIONS = FILE_MODE
FILE_UPLOAD_DIRECTORY_PERMISSIONS = DIR_MODE

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "artifacts": _artifact_backend,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Celery: without a broker the embedded default runs tasks eagerly (after commit).
_broker = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not _broker
# Eager tasks never reach a broker; naming the in-memory one keeps kombu from guessing.
CELERY_BROKER_URL = _broker or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A request that committed publishes its task once: a broker that does not answer costs it
# at most these seconds, to connect and then to hear back.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # No acknowledgement emulation: Redis hands each message over once and forgets it. With
    # it on, a worker that lost Redis while it held an unacknowledged message (a task
    # running: acks_late) tried to put it back through the connection it had just dropped,
    # and exited ("Unrecoverable error"). The database is the outbox: what a dead worker or
    # an outage drops, the sweep sends again (docs/operations.md, "A broker outage").
    "ack_emulation": False,
    # What a retry's countdown is kept under (notifications.sending.backoff).
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
# A worker and its beat wait for the broker however long it is away, also when they start
# (Celery's default gives up after 100 attempts, about 45 minutes: a beat that started
# during the outage then exits).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A worker that loses the broker lets the tasks it is running finish (Celery warns at each
# loss that it may cancel them instead): a webhook cancelled after it was posted and before
# its delivery was marked sent would be posted again when its message comes back
# (tests/notifications/test_broker_outage.py counts every delivery once).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Celery's Django fix-up closes the database connection around every task unless this is set
# (then only every this many tasks): a new PostgreSQL connection costs the server more CPU
# than a notification task. config/celery.py applies CONN_MAX_AGE around tasks instead.
CELERY_DB_REUSE_MAX = 1000
# The queue tasks are sent to, a worker's follow-up tasks included: a worker consuming
# another queue (-Q) is started with this set to it.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# Notifications (docs/notifications.md): the outbox sweep and webhook delivery.
NOTIFY_SWEEP_AFTER = env_int("NOTIFY_SWEEP_AFTER", 120)
NOTIFY_SWEEP_EVERY = env_int("NOTIFY_SWEEP_EVERY", 60)
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
WEBHOOK_TIMEOUT = env_int("WEBHOOK_TIMEOUT", 10)
WEBHOOK_MAX_FAILURES = env_int("WEBHOOK_MAX_FAILURES", 10)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8)
WEBHOOK_RETRY_BASE = env_int("WEBHOOK_RETRY_BASE", 30)
CELERY_BEAT_SCHEDULE_FILENAME = env_str(
    "CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celerybeat-schedule")
)
if _broker:
    # Beat (make worker's -B) opens its schedule file as it starts, and without the folder
    # its process dies there: the worker would run on, and no sweep with it. A process that
    # may not make the folder (a web server on a read-only disk) has no use for it.
    with contextlib.suppress(OSError):
        make_dirs(Path(CELERY_BEAT_SCHEDULE_FILENAME).parent)
CELERY_BEAT_SCHEDULE = {
    "notifications-sweep": {
        "task": "notifications.tasks.sweep_outbox",
        "schedule": float(NOTIFY_SWEEP_EVERY),
    },
    "uploads-sweep": {
        "task": "registry.tasks.sweep_unfinished_uploads",
        "schedule": 3600.0,
    },
}

# E-mail: files in VAR_DIR/mail unless EMAIL_HOST names an SMTP server.
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    # Seconds an SMTP connection may block: an event's task sends its e-mails on one, under
    # the task's time limit (notifications/tasks.py).
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "modelvault@localhost")

# Security: strict unless DEBUG (the embedded default) turns it off.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# The browser's rules for every response (django-csp; docs/architecture.md, "Brute force
# and browser hardening"): scripts, styles, images, fonts and requests from this server
# only, no inline script or style (a nonce lets the standalone technical document carry its
# own <style>), no plugins, no framing, forms posted here only. data: images are for the API
# docs' CSS.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", NONCE],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Powerful browser features that no page of this server uses (django-permissions-policy).
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "hid",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
}

# Client addresses (config/network.py): behind proxies that each append the address they
# were called from to X-Forwarded-For, the client is that many entries from its end. The
# login lockout and the API's failed-token limit count per address: without this, behind a
# proxy every user would be the proxy's one address.
TRUSTED_PROXY_COUNT = env_count("TRUSTED_PROXY_COUNT", 1 if env_bool("BEHIND_TLS_PROXY") else 0)

# The cache holds what several server processes must share: the API's count of failed
# tokens per address (api/throttle.py). CACHE_URL names a Redis database of its own
# (redis://host:6379/1: clearing the cache empties that database, so never the broker's);
# without it each process counts alone, which is right for one process only (check --deploy
# warns).
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL:
    if not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"CACHE_URL must be a redis:// URL, not {CACHE_URL!r}")
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "modelvault",
            # A Redis that does not answer costs a request at most this, then is skipped.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


# Login throttling (SPEC 4.6, django-axes): LOGIN_FAILURE_LIMIT failed logins for one
# username, or from one address, lock that username, or that address, out of the login page
# and the admin console until LOGIN_COOLOFF_SECONDS after the last failure. Failures are rows
# in the database (AccessAttempt), each counted under a row lock, so any number of processes
# count every one. A login refused during a lockout is not counted: trying again does not
# lock anybody out for longer, and a flood costs no writes. Success resets nothing (else one
# valid account would reset its address's count).
AXES_FAILURE_LIMIT = env_positive("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(seconds=env_positive("LOGIN_COOLOFF_SECONDS", 900))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_CLIENT_IP_CALLABLE = "config.network.client_address"
AXES_LOCKOUT_CALLABLE = "catalog.views.login.locked_out"

# Failed API tokens (api/throttle.py): API_TOKEN_FAILURE_LIMIT failed bearer tokens from one
# address within API_TOKEN_FAILURE_WINDOW seconds refuse every bearer request from it (429,
# the token unchecked) for that many seconds.
API_TOKEN_FAILURE_LIMIT = env_positive("API_TOKEN_FAILURE_LIMIT", 20)
API_TOKEN_FAILURE_WINDOW = env_positive("API_TOKEN_FAILURE_WINDOW", 300)

# Prometheus metrics at /metrics (config/metrics.py): with METRICS_TOKEN, for a bearer of
# that token; without, for a scraper on this host only.
METRICS_TOKEN = env_str("METRICS_TOKEN")

# Logs (config/requestlog.py): one line per request on `modelvault.request` at INFO, with
# a request id on every record, also in the Celery worker. LOG_FORMAT json (the default with
# DEBUG off) writes each record as one JSON object per line; text is for a terminal.
LOG_FORMAT = env_choice("LOG_FORMAT", "text" if DEBUG else "json", ("json", "text"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.requestlog.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "config.requestlog.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    "loggers": {"modelvault.request": {"level": env_str("REQUEST_LOG_LEVEL", "INFO")}},
}


# Single sign-on through OpenID Connect (docs/operations.md, "Single sign-on"), with
# mozilla-django-oidc: on when OIDC_RP_CLIENT_ID is set. The provider is named by its issuer
# (its endpoints then come from its discovery document, sso/discovery.py) or by its endpoints
# one by one; an endpoint set explicitly wins over the discovered one. Org admins map the
# groups claim to memberships, roles and teams on their org's SSO page (sso/services.py).
# LOCAL_LOGIN=false hides the password form and refuses password logins but a superuser's
# (/login/?local=1 shows the form for them: the break-glass accounts).
from django.urls import reverse_lazy  # noqa: E402

OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
OIDC_OP_ISSUER = env_str("OIDC_OP_ISSUER").rstrip("/")
SSO_ENABLED = bool(OIDC_RP_CLIENT_ID)
SSO_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", f"openid email profile {OIDC_GROUPS_CLAIM}")
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_TIMEOUT = env_positive("OIDC_TIMEOUT", 10)
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
_ENDPOINTS = (
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
)
if SSO_ENABLED and not OIDC_OP_ISSUER and not all(env_str(name) for name in _ENDPOINTS):
    raise ImproperlyConfigured(
        "OIDC_RP_CLIENT_ID needs OIDC_OP_ISSUER, or all of " + ", ".join(_ENDPOINTS)
    )
if OIDC_OP_ISSUER:
    from sso.discovery import discovered as _discovered
else:

    def _discovered(key: str) -> str:
        return ""


OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT") or _discovered(
    "authorization_endpoint"
)
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT") or _discovered("token_endpoint")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT") or _discovered("userinfo_endpoint")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT") or _discovered("jwks_uri")
OIDC_AUTHENTICATION_CALLBACK_URL = "sso:callback"
LOGIN_REDIRECT_URL_FAILURE = reverse_lazy("login")  # mozilla-django-oidc does not resolve it
LOCAL_LOGIN = env_bool("LOCAL_LOGIN", True)
if not LOCAL_LOGIN and not SSO_ENABLED:
    raise ImproperlyConfigured("LOCAL_LOGIN=false needs single sign-on (OIDC_RP_CLIENT_ID)")
# Before ModelBackend: refuses a password login but a superuser's while LOCAL_LOGIN is off.
AUTHENTICATION_BACKENDS.insert(
    AUTHENTICATION_BACKENDS.index("django.contrib.auth.backends.ModelBackend"),
    "sso.backends.LocalLoginGate",
)
AUTHENTICATION_BACKENDS.append("sso.backends.SsoBackend")
