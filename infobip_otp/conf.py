"""Every ``INFOBIP_OTP_*`` setting, with its default, in one place.

Settings are read from ``django.conf.settings`` on every access, so
``override_settings`` and pytest-django's ``settings`` fixture just work and
nothing is ever written back into the project's settings.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

PREFIX = "INFOBIP_OTP_"

#: Policy values for ``INFOBIP_OTP_REQUIRED`` besides a dotted path.
REQUIRED_HAS_PHONE = "has_phone"
REQUIRED_EVERYONE = "everyone"

DEFAULTS: dict[str, Any] = {
    # Provider connection.
    "BASE_URL": "",
    "API_KEY": "",
    "APPLICATION_ID": "",
    "MESSAGE_ID": "",
    "BACKEND": "infobip_otp.backends.infobip.InfobipBackend",
    "TIMEOUT": (3.05, 10.0),
    "POOL_SIZE": 32,
    "BREAKER_THRESHOLD": 5,
    "BREAKER_COOLDOWN": 30,
    # What `infobip_otp_setup` writes into the Infobip application/template.
    "APPLICATION_NAME": "infobip_otp",
    "MESSAGE_TEXT": "Your verification code is {{pin}}",
    "SENDER_ID": "",
    "SEND_PER_NUMBER_LIMIT": "5/1d",
    # Challenge lifecycle.
    "PIN_LENGTH": 6,
    "PIN_TTL": 300,
    "MAX_ATTEMPTS": 5,
    "RESEND_COOLDOWN": 30,
    "MAX_SENDS": 3,
    "LOCKOUT_THRESHOLD": 10,
    "NOTIFY_AFTER_FAILURES": 3,
    "NOTIFY_FROM_EMAIL": None,
    # Login step.
    "LOGIN_TIMEOUT": 600,
    "REQUIRED": REQUIRED_HAS_PHONE,
    "PHONE_GETTER": None,
    "EXEMPT_URLS": (),
    "REMEMBER_DEVICE_DAYS": 0,
    "ANONYMOUS_PHONE_VERIFICATION": False,
    # Phone numbers and cost control.
    "DEFAULT_REGION": None,
    "ALLOWED_REGIONS": None,
    "ALLOWED_NUMBER_TYPES": ("MOBILE", "FIXED_LINE_OR_MOBILE"),
    "RATES": {},
    "SEND_BUDGET": 1000,
    "TRUSTED_PROXY_COUNT": 0,
    # Operations.
    "CLEANUP_RETENTION": 7 * 24 * 3600,
    "ALLOW_LOCAL_BACKEND": False,
    "CACHE": "default",
}


class AppSettings:
    """Lazy view of the ``INFOBIP_OTP_*`` settings: ``app_settings.PIN_TTL``."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown setting {PREFIX}{name}")
        return getattr(django_settings, PREFIX + name, DEFAULTS[name])


app_settings = AppSettings()
