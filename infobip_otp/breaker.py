"""A circuit breaker for the provider, shared by every process through the Django cache.

After ``INFOBIP_OTP_BREAKER_THRESHOLD`` consecutive provider failures the
breaker opens: calls fail at once with ``ProviderUnavailable`` and no network
traffic, so a dead provider costs users no timeouts and the workers no
threads. ``INFOBIP_OTP_BREAKER_COOLDOWN`` seconds later one caller, in one
process, is let through as a probe (a ``cache.add`` lock decides who); its
success closes the breaker, its failure opens it for another cool-down.

The state lives in ``caches[INFOBIP_OTP_CACHE]`` and is changed only with
atomic operations (``add``, ``incr``, ``delete_many``), so all workers agree.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache

from .conf import app_settings
from .exceptions import ProviderUnavailable

logger = logging.getLogger("infobip_otp.client")

_FAILURES = "infobip_otp:breaker:failures"
_OPENED_AT = "infobip_otp:breaker:opened_at"
_PROBE = "infobip_otp:breaker:probe"
# Failures older than this say nothing about the provider's health now.
_FAILURE_WINDOW = 600
# How often a cache outage is logged (per process) while it lasts.
_OUTAGE_LOG_INTERVAL = 60.0


class CircuitBreaker:
    """Counts consecutive provider failures and fails fast while the provider is down.

    Use :meth:`before_call` before a request, then :meth:`record_success` or
    :meth:`record_failure` with what it returned.

    If the shared cache itself fails, the breaker carries on with a
    per-process state and logs an error. It neither fails closed (a cache
    outage alone would then take every login down with it) nor stops
    protecting (each process still opens after the threshold). The send
    limits, which are what stop unlimited sending, fail closed on their own.
    """

    def __init__(self) -> None:
        self._fallback = LocMemCache("infobip-otp-breaker", {})
        self._last_outage_log = float("-inf")

    def before_call(self) -> bool:
        """Raise ``ProviderUnavailable`` while open; return whether a success must reset state.

        Past the cool-down the first caller gets ``True`` and becomes the
        half-open probe; the others keep failing fast until it reports.
        """
        state = self._run(lambda cache: cache.get_many([_FAILURES, _OPENED_AT]))
        opened_at = state.get(_OPENED_AT)
        if opened_at is None:
            return bool(state.get(_FAILURES))
        if time.time() < opened_at + app_settings.BREAKER_COOLDOWN:
            raise self._open_error()
        if not self._run(lambda cache: cache.add(_PROBE, 1, timeout=self._probe_ttl())):
            raise self._open_error()
        logger.info("infobip circuit half-open: probing the provider")
        return True

    def record_success(self, dirty: bool) -> None:
        """Close the breaker and forget failures (only touches the cache when ``dirty``)."""
        if dirty:
            self._run(lambda cache: cache.delete_many([_FAILURES, _OPENED_AT, _PROBE]))

    def record_failure(self) -> None:
        """Count one failure; open (or re-open, after a failed probe) at the threshold."""
        failures = self._run(_increment_failures)
        # Once open, any failure (the probe's) re-opens it, even if the count
        # expired meanwhile: a long outage must keep one probe per cool-down.
        is_open = self._run(lambda cache: cache.get(_OPENED_AT)) is not None
        if is_open or failures >= app_settings.BREAKER_THRESHOLD:
            ttl = app_settings.BREAKER_COOLDOWN + _FAILURE_WINDOW
            self._run(lambda cache: cache.set(_OPENED_AT, time.time(), timeout=ttl))
            self._run(lambda cache: cache.delete(_PROBE))
            logger.error("infobip circuit open after %d consecutive failures", failures)

    def reset(self) -> None:
        """Forget every state, shared and per process (tests, or after fixing the provider)."""
        self._fallback.clear()
        self._run(lambda cache: cache.delete_many([_FAILURES, _OPENED_AT, _PROBE]))

    def _run(self, operation: Any) -> Any:
        try:
            return operation(caches[app_settings.CACHE])
        # Cache backends raise their own types (redis.ConnectionError, OSError, ...).
        except Exception:
            self._log_outage()
            return operation(self._fallback)

    def _log_outage(self) -> None:
        now = time.monotonic()
        if now - self._last_outage_log >= _OUTAGE_LOG_INTERVAL:
            self._last_outage_log = now
            logger.error(
                "infobip circuit breaker cache %r failed; using per-process state",
                app_settings.CACHE,
                exc_info=True,
            )

    @staticmethod
    def _probe_ttl() -> float:
        # The probe lock must outlive one request, but free itself if the probing
        # process dies before reporting; then the next caller probes.
        timeout = app_settings.TIMEOUT
        total = sum(timeout) if isinstance(timeout, (tuple, list)) else 2 * timeout
        return max(1, int(total) + 1)

    @staticmethod
    def _open_error() -> ProviderUnavailable:
        return ProviderUnavailable(provider_code="CIRCUIT_OPEN")


def _increment_failures(cache: BaseCache) -> int:
    cache.add(_FAILURES, 0, timeout=_FAILURE_WINDOW)
    try:
        return cache.incr(_FAILURES)
    except ValueError:
        # The key expired between add and incr: this failure starts a new window.
        cache.add(_FAILURES, 1, timeout=_FAILURE_WINDOW)
        return 1


#: The process-wide breaker used by :class:`infobip_otp.client.InfobipClient`.
breaker = CircuitBreaker()
