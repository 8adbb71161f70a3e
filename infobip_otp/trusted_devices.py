"""'Trust this browser': a signed cookie that skips the code on later logins.

Off unless ``INFOBIP_OTP_REMEMBER_DEVICE_DAYS`` > 0. The cookie is bound to
the user, the password hash and the confirmed phone: changing either makes
every trusted browser ask for a code again (SECURITY T28, T40).
"""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from .conf import app_settings

COOKIE_NAME = "infobip_otp_trusted"
_SALT = "infobip_otp.trusted_device"


def _fingerprint(user: Any, phone: str | None) -> str:
    return salted_hmac(_SALT, f"{user.pk}:{user.password}:{phone or ''}").hexdigest()


def is_trusted(request: Any, user: Any) -> bool:
    """Whether the request carries a valid, current cookie for ``user``."""
    days = app_settings.REMEMBER_DEVICE_DAYS
    value = request.COOKIES.get(COOKIE_NAME)
    if days <= 0 or not value:
        return False
    try:
        data = signing.loads(value, salt=_SALT, max_age=days * 86400)
    except signing.BadSignature:
        return False
    if not isinstance(data, dict) or str(data.get("u")) != str(user.pk):
        return False
    from .state import login_phone

    return constant_time_compare(
        str(data.get("f", "")), _fingerprint(user, login_phone(request, user))
    )


def remember(request: Any, response: Any, user: Any, phone: str | None) -> None:
    """Set the cookie on ``response`` (HttpOnly, SameSite=Lax, Secure on HTTPS)."""
    days = app_settings.REMEMBER_DEVICE_DAYS
    if days <= 0:
        return
    value = signing.dumps({"u": str(user.pk), "f": _fingerprint(user, phone)}, salt=_SALT)
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=days * 86400,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )
