"""Django settings shared by the benchmark scripts (``DJANGO_SETTINGS_MODULE=benchmarks.settings``).

Each script sets the environment before Django starts: ``DATABASE_URL`` and
``CACHE_URL`` (SQLite and the local-memory cache by default, PostgreSQL and
Redis for the production shape) and the ``INFOBIP_OTP_*`` connection settings
of the simulator it started. Limits are raised so they never throttle a
benchmark, but stay enabled, so their cost is measured (see
docs/performance.md).
"""

import importlib.util
import os

import environ

env = environ.Env()

SECRET_KEY = "benchmarks-only-secret-key-not-for-production-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "infobip_otp",
]
#: django-otp, for the middleware comparison only (``pip install django-otp``).
HAS_DJANGO_OTP = importlib.util.find_spec("django_otp") is not None
if HAS_DJANGO_OTP:
    INSTALLED_APPS += ["django_otp", "django_otp.plugins.otp_static"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "infobip_otp.middleware.OtpRequiredMiddleware",
]
ROOT_URLCONF = "benchmarks._common"
TEMPLATES = [
    {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True},
]

DATABASES = {"default": env.db("DATABASE_URL", default="sqlite:///:memory:")}
# One connection per thread for the whole run, as a production server keeps them.
DATABASES["default"]["CONN_MAX_AGE"] = None
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# Per run, so counters of an earlier run never meet this one.
CACHES["default"]["KEY_PREFIX"] = os.environ.get("BENCH_CACHE_PREFIX", "infobip-otp-bench")
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    # Only the single-process benchmarks run on the local-memory cache.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001", "infobip_otp.E007"]

SESSION_ENGINE = os.environ.get("BENCH_SESSION_ENGINE", "django.contrib.sessions.backends.db")

# PBKDF2's 1,000,000 rounds cost 0.38 s of CPU per login here: measured, they
# would drown what this app costs, so the benchmarks hash with MD5.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STATIC_URL = "/static/"
LOGIN_URL = "/login/"

INFOBIP_OTP_BACKEND = "infobip_otp.backends.infobip.InfobipBackend"
INFOBIP_OTP_BASE_URL = os.environ.get("INFOBIP_OTP_BASE_URL", "http://127.0.0.1:9")
INFOBIP_OTP_API_KEY = os.environ.get("INFOBIP_OTP_API_KEY", "sim-api-key")
INFOBIP_OTP_APPLICATION_ID = os.environ.get("INFOBIP_OTP_APPLICATION_ID", "")
INFOBIP_OTP_MESSAGE_ID = os.environ.get("INFOBIP_OTP_MESSAGE_ID", "")
INFOBIP_OTP_DEFAULT_REGION = "GB"
INFOBIP_OTP_SEND_BUDGET = 100_000_000
# The hand-written floor of benchmarks.endpoints runs for a pending session.
INFOBIP_OTP_EXEMPT_URLS = ["/floor/"]
# BENCH_RATELIMIT=off measures what the limits cost: django-ratelimit's switch
# (every limit of infobip_otp.ratelimits) and the hourly budget, both off.
if os.environ.get("BENCH_RATELIMIT") == "off":
    RATELIMIT_ENABLE = False
    INFOBIP_OTP_SEND_BUDGET = 0
# Every limit of infobip_otp.ratelimits.DEFAULT_RATES, raised out of reach.
INFOBIP_OTP_RATES = dict.fromkeys(
    (
        "send_ip",
        "send_user",
        "send_session",
        "send_phone",
        "send_prefix",
        "verify_ip",
        "verify_user",
        "verify_session",
        "login_ip",
        "login_username",
    ),
    "100000000/h",
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"infobip_otp": {"handlers": ["null"], "level": "INFO", "propagate": False}},
}
