"""Settings of the demo site.

Everything comes from the environment (django-environ), so one set of
variables points the demo at SQLite or PostgreSQL, the local-memory cache or
Redis, the console backend, the local simulator or a real Infobip account.
See `.env.example`.
"""

import importlib.util
from pathlib import Path

import environ

import infobip_otp
from infobip_otp.testing.simulator import DEFAULT_API_KEY, DEMO_APPLICATION_ID, DEMO_MESSAGE_ID

BASE_DIR = Path(__file__).resolve().parent
env = environ.Env()
environ.Env.read_env(BASE_DIR.parent / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="demo-only-insecure-secret-key-change-me-0123456789abcdef")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "infobip_otp",
    "example_project.demo",
]

# drf-spectacular (the `openapi` extra) is optional: when it is installed the
# demo serves the API's OpenAPI schema at /api/schema/ (docs/openapi.yaml).
OPENAPI = importlib.util.find_spec("drf_spectacular") is not None
if OPENAPI:
    INSTALLED_APPS.append("drf_spectacular")
    REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "infobip_otp API",
    "DESCRIPTION": (
        "The login step and phone enrolment of `infobip_otp` for single-page and mobile "
        "apps: an SMS one-time password, sent and checked through Infobip 2FA.\n\n"
        "Session clients (browsers) call `GET status/` first to get the `csrftoken` "
        "cookie and send its value as `X-CSRFToken` on every POST; the session cookie "
        "carries the login. Token clients (`Authorization: Token <key>`) need no CSRF; "
        "a token counts as verified once a code was verified with it.\n\n"
        'Every failure answers `{"detail", "code"}` (plus `attempts_left` for a '
        "failed verification, `fields` for malformed input); 429 and 503 carry "
        "`Retry-After`. See docs/api.md."
    ),
    "VERSION": infobip_otp.__version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/otp/api/",
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    # Only the OTP API: the admin and the demo pages are not part of it.
    "PREPROCESSING_HOOKS": ["infobip_otp.api.schema.only_otp_api"],
}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "infobip_otp.middleware.OtpRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

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
            ]
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'demo.sqlite3'}")}
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    # The default demo runs in one process (runserver), where the local-memory
    # cache is exact. With several worker processes each would keep its own
    # rate-limit counters, so set CACHE_URL to Redis for anything else.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001", "infobip_otp.E007"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# infobip_otp: every INFOBIP_OTP_* setting can come from the environment.
# One switch points the demo at the local simulator (`manage.py
# infobip_otp_simulator --port 8085` in another terminal), so the real
# InfobipBackend runs over HTTP without an Infobip account.
DEMO_SIMULATOR_URL = env("DEMO_SIMULATOR_URL", default="")
INFOBIP_OTP_API_KEY = env("INFOBIP_OTP_API_KEY", default=DEMO_SIMULATOR_URL and DEFAULT_API_KEY)
INFOBIP_OTP_BASE_URL = env("INFOBIP_OTP_BASE_URL", default=DEMO_SIMULATOR_URL)
INFOBIP_OTP_APPLICATION_ID = env(
    "INFOBIP_OTP_APPLICATION_ID", default=DEMO_SIMULATOR_URL and DEMO_APPLICATION_ID
)
INFOBIP_OTP_MESSAGE_ID = env(
    "INFOBIP_OTP_MESSAGE_ID", default=DEMO_SIMULATOR_URL and DEMO_MESSAGE_ID
)
# Without an API key the demo prints each SMS on the console.
INFOBIP_OTP_BACKEND = env(
    "INFOBIP_OTP_BACKEND",
    default=(
        "infobip_otp.backends.infobip.InfobipBackend"
        if INFOBIP_OTP_API_KEY
        else "infobip_otp.backends.console.ConsoleBackend"
    ),
)
INFOBIP_OTP_ALLOW_LOCAL_BACKEND = env.bool("INFOBIP_OTP_ALLOW_LOCAL_BACKEND", default=False)
INFOBIP_OTP_DEFAULT_REGION = env("INFOBIP_OTP_DEFAULT_REGION", default="GB")
INFOBIP_OTP_ALLOWED_REGIONS = env.list("INFOBIP_OTP_ALLOWED_REGIONS", default=[]) or None
INFOBIP_OTP_PIN_LENGTH = env.int("INFOBIP_OTP_PIN_LENGTH", default=6)
INFOBIP_OTP_PIN_TTL = env.int("INFOBIP_OTP_PIN_TTL", default=300)
INFOBIP_OTP_MAX_ATTEMPTS = env.int("INFOBIP_OTP_MAX_ATTEMPTS", default=5)
INFOBIP_OTP_RESEND_COOLDOWN = env.int("INFOBIP_OTP_RESEND_COOLDOWN", default=30)
INFOBIP_OTP_MAX_SENDS = env.int("INFOBIP_OTP_MAX_SENDS", default=3)
INFOBIP_OTP_LOGIN_TIMEOUT = env.int("INFOBIP_OTP_LOGIN_TIMEOUT", default=600)
INFOBIP_OTP_REQUIRED = env("INFOBIP_OTP_REQUIRED", default="has_phone")
# The single-page demo (/spa/) continues the login after the password step, so
# a pending session must reach it. It is static markup and a script and serves
# no data: everything it shows comes from the OTP API.
INFOBIP_OTP_EXEMPT_URLS = env.list("INFOBIP_OTP_EXEMPT_URLS", default=["spa"])
INFOBIP_OTP_REMEMBER_DEVICE_DAYS = env.int("INFOBIP_OTP_REMEMBER_DEVICE_DAYS", default=0)
INFOBIP_OTP_SEND_BUDGET = env.int("INFOBIP_OTP_SEND_BUDGET", default=1000)
INFOBIP_OTP_TRUSTED_PROXY_COUNT = env.int("INFOBIP_OTP_TRUSTED_PROXY_COUNT", default=0)
INFOBIP_OTP_CLEANUP_RETENTION = env.int("INFOBIP_OTP_CLEANUP_RETENTION", default=7 * 24 * 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"infobip_otp": {"handlers": ["console"], "level": "INFO"}},
}
