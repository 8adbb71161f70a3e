"""Rate limits and SMS-pumping guards, checked before any provider call.

Counters are django-ratelimit's: atomic ``add``/``incr`` in the cache named by
``RATELIMIT_USE_CACHE`` (shared between processes in production, system check
``infobip_otp.E007``). If that cache fails, requests are refused: a limit that
silently stops counting would make every send free (fail closed).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac
from django_ratelimit.core import get_usage

from . import signals
from .conf import app_settings
from .exceptions import RateLimited, RateLimitUnavailable, SendBudgetExhausted

logger = logging.getLogger("infobip_otp")

#: Defaults for ``INFOBIP_OTP_RATES``; a project overrides single keys, and
#: ``None`` turns one off. Sends cost money, so they are counted per hour;
#: verification is bounded per challenge already and limited in short windows.
DEFAULT_RATES: dict[str, str | None] = {
    "send_ip": "20/h",
    "send_user": "10/h",
    "send_session": "10/h",
    "send_phone": "5/h",
    "send_prefix": "30/10m",
    "verify_ip": "30/5m",
    "verify_user": "10/m",
    "verify_session": "10/m",
    "login_ip": "30/10m",
    "login_username": "10/10m",
}

# Digits kept from an E.164 number to key the prefix burst limit: country code
# plus operator/range, so a run of sequential numbers shares one counter.
_PREFIX_DIGITS = 7


def rate(name: str) -> str | None:
    """The configured rate of one limit."""
    rates = {**DEFAULT_RATES, **(app_settings.RATES or {})}
    return rates.get(name)


def client_ip(request: Any) -> str:
    """The client address, trusting ``X-Forwarded-For`` only for configured proxy hops.

    With ``INFOBIP_OTP_TRUSTED_PROXY_COUNT = 0`` (the default) the header is
    ignored, so a forged one changes nothing. With N trusted proxies, the
    N-th address from the right is the one the outermost proxy saw.
    IPv6 clients are keyed by their /64, which one client usually controls.
    """
    address = request.META.get("REMOTE_ADDR", "") or "0.0.0.0"  # noqa: S104
    hops = app_settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "invalid"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def check(request: Any, name: str, value: str | None) -> None:
    """Count one request against limit ``name`` for ``value``; raise past the rate."""
    limit = rate(name)
    if limit is None or not value:
        return
    retry_after = _count(request, f"infobip_otp.{name}", value, limit)
    if retry_after is not None:
        raise RateLimited(retry_after=retry_after)


def _count(request: Any, group: str, value: str, limit: str) -> int | None:
    """Count one request; seconds until the window ends when over ``limit``, else None.

    Any cache failure refuses the request rather than letting it go unlimited.
    """
    try:
        usage = get_usage(
            request, group=group, key=lambda group, req: value, rate=limit, increment=True
        )
    except Exception as exc:
        logger.error("rate-limit cache unavailable", extra={"event": "otp.ratelimit_down"})
        raise RateLimitUnavailable() from exc
    if usage is None:
        _not_counted()
        return None
    if not usage["should_limit"]:
        return None
    if usage["time_left"] < 0:
        # django-ratelimit reports a failed cache read/write this way.
        raise RateLimitUnavailable()
    return int(usage["time_left"])


def check_send(request: Any, phone_number: str, binding: str | None) -> None:
    """Every limit on sending a code to ``phone_number``; call before the provider."""
    user = getattr(request, "user", None)
    check(request, "send_ip", client_ip(request))
    if user is not None and user.is_authenticated:
        check(request, "send_user", str(user.pk))
    check(request, "send_session", binding)
    check(request, "send_phone", _keyed(phone_number))
    try:
        check(request, "send_prefix", _keyed(phone_number[: _PREFIX_DIGITS + 1]))
    except RateLimited:
        logger.warning(
            "burst of sends to one number prefix",
            extra={"event": "otp.prefix_burst", "prefix": phone_number[: _PREFIX_DIGITS + 1]},
        )
        raise
    check_budget(request)


def _keyed(value: str) -> str:
    """A keyed digest of a number for the counter's cache key.

    django-ratelimit hashes its keys without a secret, so a cache dump could
    be matched against every number of a range offline; keyed with
    ``SECRET_KEY`` it cannot.
    """
    return salted_hmac("infobip_otp.ratelimit", value, algorithm="sha256").hexdigest()


def check_budget(request: Any) -> None:
    """The project-wide hourly SMS budget (``INFOBIP_OTP_SEND_BUDGET``)."""
    budget = app_settings.SEND_BUDGET
    if not budget:
        return
    if _count(request, "infobip_otp.send_budget", "all", f"{int(budget)}/h") is not None:
        logger.warning(
            "hourly SMS budget exhausted",
            extra={"event": "otp.budget_exhausted", "budget": budget},
        )
        signals.otp_budget_exhausted.send(sender=None, budget=budget, request=request)
        raise SendBudgetExhausted()


def _not_counted() -> None:
    """django-ratelimit counted nothing: fine if switched off, refused if its cache failed.

    ``get_usage`` answers None with ``RATELIMIT_ENABLE = False`` (a project's
    explicit choice) and also when the cache failed quietly (django-redis with
    ``IGNORE_EXCEPTIONS``) and ``RATELIMIT_FAIL_OPEN`` is set: that setting is
    for the project's own views and must not make every SMS free (SECURITY T13).
    """
    if getattr(settings, "RATELIMIT_ENABLE", True):
        logger.error("rate-limit cache unavailable", extra={"event": "otp.ratelimit_down"})
        raise RateLimitUnavailable()


def check_verify(request: Any, binding: str | None) -> None:
    """The limits on verification requests."""
    user = getattr(request, "user", None)
    check(request, "verify_ip", client_ip(request))
    if user is not None and user.is_authenticated:
        check(request, "verify_user", str(user.pk))
    check(request, "verify_session", binding)


def check_login(request: Any, username: str) -> None:
    """The limits on the API's password step."""
    check(request, "login_ip", client_ip(request))
    check(request, "login_username", (username or "").strip().lower()[:150])
