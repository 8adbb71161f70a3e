"""System checks, registered when the app is ready.

Each message, hint and id is a constant so tests compare the exact check.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.urls import URLResolver, get_resolver
from django.utils.module_loading import import_string

from .conf import app_settings
from .provisioning import MAX_PIN_TTL, MIN_PIN_LENGTH, is_safe_pin_length, is_safe_pin_ttl

INFOBIP_BACKEND = "infobip_otp.backends.infobip.InfobipBackend"
LOCAL_BACKENDS = (
    "infobip_otp.backends.console.ConsoleBackend",
    "infobip_otp.backends.locmem.LocMemBackend",
)
MIDDLEWARE_PATH = "infobip_otp.middleware.OtpRequiredMiddleware"
AUTH_MIDDLEWARE_PATH = "django.contrib.auth.middleware.AuthenticationMiddleware"
# Caches whose counters are not shared between processes or are not atomic:
# a rate limit kept there is per worker, so N workers allow N times the rate.
UNSHARED_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache",
    "django.core.cache.backends.db.DatabaseCache",
)

E001_MSG = "INFOBIP_OTP_{name} is required by the Infobip backend."
E001_HINT = "Set it from your Infobip account; `manage.py infobip_otp_setup` prints the ids."
E002_MSG = "INFOBIP_OTP_BACKEND {path!r} cannot be imported."
E002_HINT = "Use a dotted path to a class, e.g. " + INFOBIP_BACKEND + "."
E003_MSG = "INFOBIP_OTP_BASE_URL must use https:// (plain http only for loopback hosts)."
E003_HINT = "Use the https base URL shown in your Infobip account."
E004_MSG = "INFOBIP_OTP_BACKEND {path!r} is for development; it is refused with DEBUG = False."
E004_HINT = "Use the Infobip backend, or set INFOBIP_OTP_ALLOW_LOCAL_BACKEND = True on purpose."
E005_MSG = MIDDLEWARE_PATH + " is not in MIDDLEWARE: password logins would not need a code."
E005_HINT = "Add it to MIDDLEWARE after " + AUTH_MIDDLEWARE_PATH + "."
E006_MSG = MIDDLEWARE_PATH + " must come after " + AUTH_MIDDLEWARE_PATH + "."
E006_HINT = "Move it below AuthenticationMiddleware in MIDDLEWARE."
E007_MSG = "The rate-limit cache {alias!r} ({backend}) is not shared between processes."
E007_HINT = (
    "Rate limits and the send budget must use a shared, atomic cache such as Redis "
    "or Memcached in production (RATELIMIT_USE_CACHE / INFOBIP_OTP_CACHE)."
)

E008_MSG = "INFOBIP_OTP_PIN_TTL must be whole seconds from 1 to {maximum}; it is {value!r}."
E008_HINT = "A code may live at most 10 minutes; the default is 300 seconds."
E009_MSG = "INFOBIP_OTP_PIN_LENGTH must be a whole number, at least {minimum}; it is {value!r}."
E009_HINT = "Shorter codes can be guessed; the default is 6 digits."
E010_MSG = (
    "{route!r} serves DRF's ObtainAuthToken: it gives anyone with the password the user's "
    "one token, verified for good once its owner entered a code."
)
E010_HINT = (
    "Hand out a new token on every password login (delete the user's old token first), "
    "so a token is verified only for the client that entered the code."
)

E001 = "infobip_otp.E001"
E002 = "infobip_otp.E002"
E003 = "infobip_otp.E003"
E004 = "infobip_otp.E004"
E005 = "infobip_otp.E005"
E006 = "infobip_otp.E006"
E007 = "infobip_otp.E007"
E008 = "infobip_otp.E008"
E009 = "infobip_otp.E009"
E010 = "infobip_otp.E010"

REQUIRED_FOR_INFOBIP = ("BASE_URL", "API_KEY", "APPLICATION_ID", "MESSAGE_ID")


@register(Tags.security)
def check_backend(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E001-E004: the configured backend imports and has what it needs."""
    path = app_settings.BACKEND
    try:
        import_string(path)
    except ImportError:
        return [Error(E002_MSG.format(path=path), hint=E002_HINT, id=E002)]
    errors: list[Error] = []
    if path == INFOBIP_BACKEND:
        errors += [
            Error(E001_MSG.format(name=name), hint=E001_HINT, id=E001)
            for name in REQUIRED_FOR_INFOBIP
            if not getattr(app_settings, name)
        ]
        base_url = app_settings.BASE_URL
        if base_url and not _is_safe_base_url(base_url):
            errors.append(Error(E003_MSG, hint=E003_HINT, id=E003))
    if path in LOCAL_BACKENDS and not settings.DEBUG and not app_settings.ALLOW_LOCAL_BACKEND:
        errors.append(Error(E004_MSG.format(path=path), hint=E004_HINT, id=E004))
    return errors


@register(Tags.security)
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E005/E006: the middleware is installed, after AuthenticationMiddleware."""
    middleware = list(settings.MIDDLEWARE)
    if MIDDLEWARE_PATH not in middleware:
        return [Error(E005_MSG, hint=E005_HINT, id=E005)]
    if AUTH_MIDDLEWARE_PATH not in middleware or middleware.index(
        MIDDLEWARE_PATH
    ) < middleware.index(AUTH_MIDDLEWARE_PATH):
        return [Error(E006_MSG, hint=E006_HINT, id=E006)]
    return []


@register(Tags.security, Tags.caches)
def check_rate_limit_cache(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E007: outside DEBUG, rate-limit counters must live in a shared cache."""
    if settings.DEBUG:
        return []
    aliases = {getattr(settings, "RATELIMIT_USE_CACHE", "default"), app_settings.CACHE}
    errors = []
    for alias in sorted(aliases):
        backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
        if backend in UNSHARED_CACHES:
            errors.append(
                Error(E007_MSG.format(alias=alias, backend=backend), hint=E007_HINT, id=E007)
            )
    return errors


@register(Tags.security)
def check_code_policy(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E008/E009: a code lives at most 10 minutes and has at least 6 digits.

    Our own settings only: whether the Infobip application agrees is read
    from the account by ``manage.py infobip_otp_setup --check``, never here
    (no network calls while checks run).
    """
    errors = []
    ttl = app_settings.PIN_TTL
    if not is_safe_pin_ttl(ttl):
        errors.append(
            Error(E008_MSG.format(maximum=MAX_PIN_TTL, value=ttl), hint=E008_HINT, id=E008)
        )
    length = app_settings.PIN_LENGTH
    if not is_safe_pin_length(length):
        errors.append(
            Error(E009_MSG.format(minimum=MIN_PIN_LENGTH, value=length), hint=E009_HINT, id=E009)
        )
    return errors


@register(Tags.security, Tags.urls)
def check_token_endpoints(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E010: no URL hands out DRF's one token per user for a password alone.

    ``IsOtpVerified`` counts a token as verified once a code was entered
    with it; ``ObtainAuthToken`` returns that same token to the next
    password login, so the password alone would get past the code.
    """
    if "rest_framework.authtoken" not in settings.INSTALLED_APPS:
        return []
    from rest_framework.authtoken.views import ObtainAuthToken

    return [
        Error(E010_MSG.format(route=route), hint=E010_HINT, id=E010)
        for route, view_class in _routes(get_resolver().url_patterns)
        if isinstance(view_class, type)
        and issubclass(view_class, ObtainAuthToken)
        and view_class.post is ObtainAuthToken.post
    ]


def _routes(patterns: Any, prefix: str = "") -> Any:
    """``(route, view class or None)`` of every URL pattern, included ones too."""
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, route)
        else:
            yield route, getattr(entry.callback, "view_class", None)


def _is_safe_base_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
