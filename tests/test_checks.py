"""One test per system check, comparing the exact Error."""

import pytest
from django.core.checks import Error

from infobip_otp import checks

INFOBIP = "infobip_otp.backends.infobip.InfobipBackend"
FULL_INFOBIP = {
    "INFOBIP_OTP_BACKEND": INFOBIP,
    "INFOBIP_OTP_BASE_URL": "https://abc123.api.infobip.com",
    "INFOBIP_OTP_API_KEY": "key",
    "INFOBIP_OTP_APPLICATION_ID": "APP",
    "INFOBIP_OTP_MESSAGE_ID": "MSG",
}
GOOD_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    checks.AUTH_MIDDLEWARE_PATH,
    checks.MIDDLEWARE_PATH,
]


@pytest.fixture
def infobip(settings):
    for name, value in FULL_INFOBIP.items():
        setattr(settings, name, value)
    return settings


def test_complete_infobip_configuration_passes(infobip):
    assert checks.check_backend() == []


@pytest.mark.parametrize("name", ["BASE_URL", "API_KEY", "APPLICATION_ID", "MESSAGE_ID"])
def test_e001_missing_infobip_setting(infobip, name):
    setattr(infobip, f"INFOBIP_OTP_{name}", "")
    assert checks.check_backend() == [
        Error(checks.E001_MSG.format(name=name), hint=checks.E001_HINT, id="infobip_otp.E001")
    ]


def test_e002_backend_that_does_not_import(settings):
    settings.INFOBIP_OTP_BACKEND = "infobip_otp.backends.nope.Backend"
    assert checks.check_backend() == [
        Error(
            checks.E002_MSG.format(path="infobip_otp.backends.nope.Backend"),
            hint=checks.E002_HINT,
            id="infobip_otp.E002",
        )
    ]


@pytest.mark.parametrize(
    "url", ["http://abc123.api.infobip.com", "ftp://abc.example", "http://10.0.0.5:8085"]
)
def test_e003_plain_http_base_url(infobip, url):
    infobip.INFOBIP_OTP_BASE_URL = url
    assert checks.check_backend() == [
        Error(checks.E003_MSG, hint=checks.E003_HINT, id="infobip_otp.E003")
    ]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8085", "http://localhost:8085", "http://[::1]:8085"]
)
def test_e003_allows_loopback_http(infobip, url):
    infobip.INFOBIP_OTP_BASE_URL = url
    assert checks.check_backend() == []


@pytest.mark.parametrize("path", checks.LOCAL_BACKENDS)
def test_e004_local_backend_without_debug(settings, path):
    settings.DEBUG = False
    settings.INFOBIP_OTP_BACKEND = path
    settings.INFOBIP_OTP_ALLOW_LOCAL_BACKEND = False
    assert checks.check_backend() == [
        Error(checks.E004_MSG.format(path=path), hint=checks.E004_HINT, id="infobip_otp.E004")
    ]


def test_e004_local_backend_allowed_with_debug_or_opt_in(settings):
    settings.INFOBIP_OTP_BACKEND = checks.LOCAL_BACKENDS[0]
    settings.INFOBIP_OTP_ALLOW_LOCAL_BACKEND = False
    settings.DEBUG = True
    assert checks.check_backend() == []
    settings.DEBUG = False
    settings.INFOBIP_OTP_ALLOW_LOCAL_BACKEND = True
    assert checks.check_backend() == []


def test_e005_middleware_missing(settings):
    settings.MIDDLEWARE = GOOD_MIDDLEWARE[:2]
    assert checks.check_middleware() == [
        Error(checks.E005_MSG, hint=checks.E005_HINT, id="infobip_otp.E005")
    ]


def test_e006_middleware_before_authentication(settings):
    settings.MIDDLEWARE = [GOOD_MIDDLEWARE[0], GOOD_MIDDLEWARE[2], GOOD_MIDDLEWARE[1]]
    assert checks.check_middleware() == [
        Error(checks.E006_MSG, hint=checks.E006_HINT, id="infobip_otp.E006")
    ]


def test_middleware_in_place_passes(settings):
    settings.MIDDLEWARE = GOOD_MIDDLEWARE
    assert checks.check_middleware() == []


def test_e007_unshared_rate_limit_cache_in_production(settings):
    settings.DEBUG = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert checks.check_rate_limit_cache() == [
        Error(
            checks.E007_MSG.format(
                alias="default", backend="django.core.cache.backends.locmem.LocMemCache"
            ),
            hint=checks.E007_HINT,
            id="infobip_otp.E007",
        )
    ]


def test_e007_shared_cache_passes(settings):
    settings.DEBUG = False
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
        }
    }
    assert checks.check_rate_limit_cache() == []


def test_e007_not_raised_in_debug(settings):
    settings.DEBUG = True
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert checks.check_rate_limit_cache() == []
