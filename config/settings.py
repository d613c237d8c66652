"""Settings for the grid-governance platform.

One module for every environment. Values come from the environment through the small helpers below, which
refuse bad values loudly instead of guessing. With nothing set, the app runs on a laptop: SQLite under
`var/`, DEBUG on, Celery tasks run eagerly. `DJANGO_ENV=production` switches on the production posture and
requires the secrets it needs.
"""

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name, default=None, *, required=False):
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"The environment variable {name} must be set.")
        return default
    return value


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_int(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None


def env_list(name, default=()):
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


DJANGO_ENV = env_str("DJANGO_ENV", "development")
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"DJANGO_ENV={DJANGO_ENV!r}: use 'development' or 'production'.")
PRODUCTION = DJANGO_ENV == "production"

# --- Core -----------------------------------------------------------------------------------------------
if PRODUCTION:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", required=True)
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must list the host names (comma separated) in production.")
    DEBUG = env_bool("DJANGO_DEBUG", False)
else:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
    DEBUG = env_bool("DJANGO_DEBUG", True)

CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "treebeard",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "governance",
    "grids",
    "points",
    "mailbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "governance.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "governance.security.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "django.template.context_processors.i18n",
                "governance.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
# Persistent connections matter: a DRF list page is ~5x faster with them (see docs/PERFORMANCE.md).
CONN_MAX_AGE = env_int("DJANGO_CONN_MAX_AGE", 600)
# On PostgreSQL, a SELECT a connection runs a second time is prepared, and planned no more (governance.prepared).
PREPARED_SELECTS = env_bool("DJANGO_PREPARED_SELECTS", True)
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=CONN_MAX_AGE, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's PostgreSQL backend, its health check asking the socket before it asks the server (governance.pg).
        DATABASES["default"]["ENGINE"] = "governance.pg"
else:
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "var" / "db.sqlite3",
            "OPTIONS": {"timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "governance.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_COOKIE_AGE", 8 * 3600)
# Django's backend behind the lockout (governance/security.py): 5 failures from one address, or 20 from
# anywhere, within 15 minutes lock the username for 15 minutes.
AUTHENTICATION_BACKENDS = ["governance.security.LockoutBackend"]
LOGIN_LOCKOUT_FAILURES = env_int("LOGIN_LOCKOUT_FAILURES", 5)
LOGIN_LOCKOUT_ACCOUNT_FAILURES = env_int("LOGIN_LOCKOUT_ACCOUNT_FAILURES", 20)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15)
# Two-factor sign-in with an authenticator app (TOTP): anyone may turn it on; administrators must in production
# (on a laptop's demo city the admin persona signs in with the password alone, unless this is set).
TWO_FACTOR_REQUIRED_FOR_ADMINISTRATORS = env_bool("TWO_FACTOR_REQUIRED_FOR_ADMINISTRATORS", PRODUCTION)
OTP_TOTP_ISSUER = "网格化社会治理平台"

# --- Language and time ----------------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- REST API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON written by orjson (governance.renderers), the browsable API as DRF has it.
    "DEFAULT_RENDERER_CLASSES": [
        "governance.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "governance.renderers.ContentNegotiation",
    "DEFAULT_PAGINATION_CLASS": "governance.api_base.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["governance.api_base.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "governance.api_base.exception_handler",
    "DATETIME_FORMAT": "iso-8601",
    "DEFAULT_THROTTLE_RATES": {"login": env_str("API_LOGIN_RATE", "20/min")},
}
# API lists count exactly up to EXACT_COUNT rows; a larger count is the one counted at most COUNT_CACHE_SECONDS ago
# (governance.api_base.CountingPaginator), so that paging a street's 95,000 cases does not count them every time.
EXACT_COUNT = env_int("API_EXACT_COUNT", 1000)
COUNT_CACHE_SECONDS = env_int("API_COUNT_CACHE_SECONDS", 60)
# The compiled SQL of a light list (cases, letters, residents, boards, case categories), kept this long for the same
# request by the same caller in one worker (governance.api_base.ListPlan: rows and count are read anew each time;
# 0 builds every list afresh).
LIST_PLAN_SECONDS = env_int("API_LIST_PLAN_SECONDS", 60)
# On PostgreSQL each worker keeps the API tokens it has read, with their users and positions, until a trigger says one
# of their tables changed and at most this long (governance.authentication); 0 reads them for every request.
TOKEN_CACHE_SECONDS = env_int("API_TOKEN_CACHE_SECONDS", 60)
# Case and letter categories and departments, as lists name them (governance.catalogues); an edit drops the copy.
CATALOGUE_CACHE_SECONDS = env_int("CATALOGUE_CACHE_SECONDS", 60)
# The public letters' list pages, kept until any letter changes, and at most this long (mailbox.selectors).
PUBLIC_LETTERS_CACHE_SECONDS = env_int("PUBLIC_LETTERS_CACHE_SECONDS", 30)
SPECTACULAR_SETTINGS = {
    "TITLE": "网格化社会治理平台 API",
    "DESCRIPTION": "Grid-governance platform: hierarchy, grid cases, points ledger, secretary mailbox.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "governance.api_base.document_errors",
    ],
    # Cases and letters both have a state and a closed reason: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "CaseStateEnum": "grids.models.CaseState",
        "CaseClosedReasonEnum": "grids.models.ClosedReason",
        "LetterStateEnum": "mailbox.models.LetterState",
        "LetterClosedReasonEnum": "mailbox.models.ClosedReason",
    },
}

# --- Cache ----------------------------------------------------------------------------------------------
REDIS_CACHE_URL = env_str("REDIS_CACHE_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE_URL}
        if REDIS_CACHE_URL
        # Each process's own. Django's default of 300 entries is less than the dashboard figures the beat keeps
        # for a city's 160 streets and communities (two each), besides the kept counts and catalogues.
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 20000}}
    )
}

# --- Celery ---------------------------------------------------------------------------------------------
# Office hours of a working day, (hour, minute) pairs: deadlines close at the end, and times to sign or to
# handle are counted in them (governance/workdays.py).
WORKING_HOURS = ((env_int("WORKING_DAY_START_HOUR", 9), 0), (env_int("WORKING_DAY_END_HOUR", 18), 0))

# Extra notification channels (dotted paths of governance.notifications.Channel subclasses, e.g. an SMS
# gateway); the in-app notification is always written.
NOTIFICATION_CHANNELS = env_list("NOTIFICATION_CHANNELS")

# Photos attached to cases and point entries: images only, each uploaded file at most this many bytes (they are
# scaled down to 2560 px and stored as JPEG without EXIF, so today's 50-megapixel phone photos fit).
CASE_PHOTO_MAX_BYTES = env_int("CASE_PHOTO_MAX_BYTES", 20 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# The secretary mailbox: working days to accept a letter, to reply once accepted (also after a reopening), to
# answer the writer's follow-up question; letters a resident may send in a day (more: 429); attachments.
MAILBOX_ACCEPT_DAYS = env_int("MAILBOX_ACCEPT_DAYS", 2)
MAILBOX_REPLY_DAYS = env_int("MAILBOX_REPLY_DAYS", 10)
MAILBOX_FOLLOW_UP_DAYS = env_int("MAILBOX_FOLLOW_UP_DAYS", 5)
MAILBOX_DAILY_LIMIT = env_int("MAILBOX_DAILY_LIMIT", 5)
MAILBOX_MAX_ATTACHMENTS = 5
MAILBOX_ATTACHMENT_MAX_BYTES = env_int("MAILBOX_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)

# Open311 requests one API key may make in a minute (grids/open311.py).
OPEN311_RATE_PER_MINUTE = env_int("OPEN311_RATE_PER_MINUTE", 60)

# Days a month's points board stays open to objections after it is published (公示期).
POINTS_NOTICE_DAYS = env_int("POINTS_NOTICE_DAYS", 5)

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat copies these into its database schedule at start; administrators can change them in the admin.
CELERY_BEAT_SCHEDULE = {
    "case-deadlines": {"task": "grids.sweep_case_deadlines", "schedule": 300.0},
    "letter-deadlines": {"task": "mailbox.sweep_letter_deadlines", "schedule": 300.0},
    # The dashboards' history figures (12 months' trend, population counts) into the cache (share it between
    # nodes with REDIS_CACHE_URL), so that no leader waits for them.
    "dashboard-history": {"task": "governance.refresh_dashboards", "schedule": 600.0},
    # The notification outbox: what the broker could not take at the time, and channels to try again.
    "notification-outbox": {"task": "governance.deliver_notifications_due", "schedule": 60.0},
    # The previous month's points tally and boards, on the 1st at 01:00 (CELERY_TIMEZONE, Asia/Shanghai).
    "points-monthly-tally": {
        "task": "points.tally_previous_month",
        "schedule": crontab(minute=0, hour=1, day_of_month=1),
    },
}

# The load benchmark's ceiling (bench/load_city.py): a plain Django view at /bench/plain, only when asked for.
BENCH_PLAIN_VIEW = env_bool("DJANGO_BENCH_PLAIN_VIEW", False)

# --- Production posture ---------------------------------------------------------------------------------
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
    if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
        # The proxy terminates TLS and says so in this header; without it every request looks like plain HTTP.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Logging: never personal data; see governance.masking --------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO", "propagate": True}},
}
