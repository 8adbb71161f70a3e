"""Rate limits and SMS-pumping guards, checked before any provider call.

Counters are django-ratelimit's: its keys, windows and rates, in the cache
named by ``RATELIMIT_USE_CACHE`` (shared between processes in production,
system check ``infobip_otp.E007``). The limits of one request are counted in
order and counting stops at the first one over its rate, so a refused request
never spends a later limit (the project-wide budget comes last). With a Redis
cache (Django's or django-redis) one script does that in a single round trip;
with any other cache each limit is django-ratelimit's ``get_usage`` (an
``add`` and an ``incr``). If the cache fails, requests are refused: a limit
that silently stops counting would make every send free (fail closed).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.utils.crypto import salted_hmac
from django_ratelimit.core import get_usage

try:
    # django-ratelimit's own rules for a counter's key, window and expiry, so the
    # one-round-trip path counts in exactly the keys ``get_usage`` uses.
    from django_ratelimit.core import (
        ALL,
        EXPIRATION_FUDGE,
        _get_window,
        _make_cache_key,
        _split_rate,
    )
except ImportError:  # pragma: no cover - a django-ratelimit without them: get_usage only
    _make_cache_key = None

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


class Limit(NamedTuple):
    """One counter to count a request in: django-ratelimit's group, key value and rate."""

    group: str
    value: str
    rate: str


class Over(NamedTuple):
    """The first limit a request went over, and seconds until its window ends."""

    limit: Limit
    retry_after: int


def check(request: Any, name: str, value: str | None) -> None:
    """Count one request against limit ``name`` for ``value``; raise past the rate."""
    _raise_over(count(request, _limits((name, value))))


def _limits(*named: tuple[str, str | None]) -> list[Limit]:
    """The configured limits among ``(name, value)`` pairs; a limit set to None is off."""
    found = []
    for name, value in named:
        limit = rate(name)
        if limit is not None and value:
            found.append(Limit(f"infobip_otp.{name}", value, limit))
    return found


def _raise_over(over: Over | None) -> None:
    if over is not None:
        raise RateLimited(retry_after=over.retry_after)


def count(request: Any, limits: list[Limit]) -> Over | None:
    """Count one request in each of ``limits``, in order, up to the first one over its rate.

    Returns that limit (later ones are not counted) or None. Any cache failure
    refuses the request rather than letting it go unlimited.
    """
    if not limits or not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    try:
        client = _redis_client(cache)
        if client is not None:
            return _count_in_redis(client, cache, limits)
        for limit in limits:
            over = _count_one(request, limit)
            if over is not None:
                return over
    except RateLimitUnavailable:
        raise
    except Exception as exc:
        _cache_down()
        raise RateLimitUnavailable() from exc
    return None


def _count_one(request: Any, limit: Limit) -> Over | None:
    usage = get_usage(
        request,
        group=limit.group,
        key=lambda group, req: limit.value,
        rate=limit.rate,
        increment=True,
    )
    if usage is None:
        _not_counted()
        return None
    if not usage["should_limit"]:
        return None
    if usage["time_left"] < 0:
        # django-ratelimit reports a failed cache read/write this way.
        raise RateLimitUnavailable()
    return Over(limit, int(usage["time_left"]))


# Counts one request in each counter (KEYS) in turn, each created with its
# expiry (ARGV: limit, seconds, limit, seconds, ...), and stops at the first
# one over its limit: its 1-based position, or 0. Atomic, so no counter is
# ever left without an expiry.
_COUNT_SCRIPT = """
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
  if count > tonumber(ARGV[2 * i - 1]) then return i end
end
return 0
"""


def _count_in_redis(client: Any, cache: BaseCache, limits: list[Limit]) -> Over | None:
    keys, arguments, windows = [], [], []
    for limit in limits:
        allowed, period = _split_rate(limit.rate)
        window = _get_window(limit.value, period)
        key = _make_cache_key(limit.group, window, limit.rate, limit.value, ALL)
        keys.append(cache.make_and_validate_key(key))
        arguments += [allowed, period + EXPIRATION_FUDGE]
        windows.append(window)
    position = int(client.eval(_COUNT_SCRIPT, len(keys), *keys, *arguments))
    if not position:
        return None
    return Over(limits[position - 1], windows[position - 1] - int(time.time()))


def _redis_client(cache: BaseCache) -> Any:
    """A redis-py client that writes to ``cache``'s server, or None for other caches.

    Django's ``RedisCache`` and django-redis's default client keep every key
    on one server (a script may touch several keys); sharded set-ups, and
    any other cache, count limit by limit.
    """
    if _make_cache_key is None:  # pragma: no cover
        return None
    from django.core.cache.backends.redis import RedisCache

    if isinstance(cache, RedisCache):
        return cache._cache.get_client(write=True)
    try:
        from django_redis.cache import RedisCache as DjangoRedisCache
        from django_redis.client import DefaultClient, ShardClient
    except ImportError:
        return None
    if isinstance(cache, DjangoRedisCache):
        client = cache.client
        if isinstance(client, DefaultClient) and not isinstance(client, ShardClient):
            # Not cache.set/incr: django-redis's IGNORE_EXCEPTIONS would turn
            # a dead server into "not counted"; the raw client raises.
            return client.get_client(write=True)
    return None


def check_send(request: Any, phone_number: str, binding: str | None) -> None:
    """Every limit on sending a code to ``phone_number``; call before the provider.

    The hourly budget comes last: a request refused by another limit never
    spends it, so one client cannot exhaust everyone's budget.
    """
    user = getattr(request, "user", None)
    prefix = phone_number[: _PREFIX_DIGITS + 1]
    limits = _limits(
        ("send_ip", client_ip(request)),
        ("send_user", str(user.pk) if user is not None and user.is_authenticated else None),
        ("send_session", binding),
        ("send_phone", _keyed(phone_number)),
        ("send_prefix", _keyed(prefix)),
    )
    budget = _budget_limit()
    over = count(request, limits + budget)
    if over is None:
        return
    if budget and over.limit == budget[0]:
        _budget_exhausted(request)
    if over.limit.group == "infobip_otp.send_prefix":
        logger.warning(
            "burst of sends to one number prefix",
            extra={"event": "otp.prefix_burst", "prefix": prefix},
        )
    _raise_over(over)


def _keyed(value: str) -> str:
    """A keyed digest of a number for the counter's cache key.

    django-ratelimit hashes its keys without a secret, so a cache dump could
    be matched against every number of a range offline; keyed with
    ``SECRET_KEY`` it cannot.
    """
    return salted_hmac("infobip_otp.ratelimit", value, algorithm="sha256").hexdigest()


def _budget_limit() -> list[Limit]:
    """The project-wide hourly SMS budget (``INFOBIP_OTP_SEND_BUDGET``), if set."""
    budget = app_settings.SEND_BUDGET
    if not budget:
        return []
    return [Limit("infobip_otp.send_budget", "all", f"{int(budget)}/h")]


def _budget_exhausted(request: Any) -> None:
    budget = app_settings.SEND_BUDGET
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
        _cache_down()
        raise RateLimitUnavailable()


def _cache_down() -> None:
    logger.error("rate-limit cache unavailable", extra={"event": "otp.ratelimit_down"})


def check_verify(request: Any, binding: str | None) -> None:
    """The limits on verification requests."""
    user = getattr(request, "user", None)
    limits = _limits(
        ("verify_ip", client_ip(request)),
        ("verify_user", str(user.pk) if user is not None and user.is_authenticated else None),
        ("verify_session", binding),
    )
    _raise_over(count(request, limits))


def check_login(request: Any, username: str) -> None:
    """The limits on the API's password step."""
    limits = _limits(
        ("login_ip", client_ip(request)),
        ("login_username", (username or "").strip().lower()[:150]),
    )
    _raise_over(count(request, limits))
