"""The login step's state, kept in the session under one key.

The state is small on purpose (SECURITY rule 4): the user id, when the
password step happened, the login challenge's public id and whether its first
code went out. Never a password, a PIN or a phone number.
"""

from __future__ import annotations

import time
from typing import Any

from django.middleware.csrf import rotate_token
from django.utils.module_loading import import_string

from .conf import REQUIRED_EVERYONE, REQUIRED_HAS_PHONE, app_settings

SESSION_KEY = "_infobip_otp"
# The attribute of a login's request that holds (user id, number) for login_phone().
_LOGIN_PHONE = "_infobip_otp_login_phone"

PENDING = "pending"  # password accepted, code not yet verified
ENROLL = "enroll"  # password accepted, the user must add a phone first
VERIFIED = "verified"  # both factors passed in this session
NOT_REQUIRED = "not_required"  # the policy asks no code of this user

#: States in which the session is not yet fully authenticated.
INCOMPLETE = (PENDING, ENROLL)


def get_state(request: Any) -> dict[str, Any] | None:
    """The state dict, or None when the session never went through a login."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    state = session.get(SESSION_KEY)
    return state if isinstance(state, dict) else None


def is_incomplete(state: dict[str, Any] | None) -> bool:
    return state is not None and state.get("state") in INCOMPLETE


def has_timed_out(state: dict[str, Any], now: float | None = None) -> bool:
    """Whether an incomplete login is older than ``INFOBIP_OTP_LOGIN_TIMEOUT``."""
    started = state.get("since")
    if not isinstance(started, (int, float)):
        return True
    return (now or time.time()) - started > app_settings.LOGIN_TIMEOUT


def begin(request: Any, user: Any, kind: str) -> None:
    """Start an incomplete login (``PENDING`` or ``ENROLL``) for ``user``."""
    request.session[SESSION_KEY] = {
        "state": kind,
        "user_id": str(user.pk),
        "since": time.time(),
        "challenge": None,
        "sent": False,
    }


def update(request: Any, **changes: Any) -> None:
    state = dict(get_state(request) or {})
    state.update(changes)
    request.session[SESSION_KEY] = state


def complete(request: Any) -> None:
    """Both factors passed: new session key, new CSRF token, state ``VERIFIED``.

    Cycling the key means a session id seen during the pending step (e.g. on
    a shared machine) is worthless afterwards (SECURITY T17).
    """
    state = get_state(request) or {}
    request.session.cycle_key()
    rotate_token(request)
    request.session[SESSION_KEY] = {
        "state": VERIFIED,
        "user_id": state.get("user_id"),
        "since": time.time(),
    }


def adopt(request: Any) -> str:
    """Give a signed-in session without state (it predates this app) its state.

    Judged once by the policy and stored, so the middleware stays free of
    queries afterwards; a session that needs a code becomes pending.
    """
    kind = required_kind(request.user) or NOT_REQUIRED
    begin(request, request.user, kind)
    return kind


def required_kind(user: Any, request: Any = None) -> str | None:
    """What the policy asks of ``user`` at login: ``PENDING``, ``ENROLL`` or None.

    With the login's ``request``, the number read here is kept on that request
    (never in the session) for :func:`login_phone`.
    """
    policy = app_settings.REQUIRED
    phone = get_user_phone(user)
    if request is not None:
        setattr(request, _LOGIN_PHONE, (user.pk, phone))
    if policy == REQUIRED_HAS_PHONE:
        needed = phone is not None
    elif policy == REQUIRED_EVERYONE:
        needed = True
    else:
        needed = bool(import_string(policy)(user))
    if not needed:
        return None
    return PENDING if phone else ENROLL


def login_phone(request: Any, user: Any) -> str | None:
    """``user``'s number as this request's login read it; read now if it did not.

    Spares the answer to a login, which shows the number masked, and the
    trusted-browser check a second query for what the policy check just read.
    """
    remembered = getattr(request, _LOGIN_PHONE, None)
    if remembered is not None and remembered[0] == user.pk:
        return remembered[1]
    return get_user_phone(user)


def get_user_phone(user: Any) -> str | None:
    """The user's confirmed number (E.164), from ``PHONE_GETTER`` or the PhoneDevice."""
    getter = app_settings.PHONE_GETTER
    if getter:
        return import_string(getter)(user) or None
    from .models import PhoneDevice

    return PhoneDevice.objects.filter(user=user).values_list("phone_number", flat=True).first()


def get_user_factor(user: Any) -> tuple[str | None, bool | None]:
    """The user's number and whether their factor is locked, read together.

    One statement where a send would otherwise read the number and then the
    lock. The lock is None (unknown: ask ``services.is_factor_locked``) when
    ``PHONE_GETTER`` supplies the number.
    """
    if app_settings.PHONE_GETTER:
        return get_user_phone(user), None
    from .models import PhoneDevice

    row = PhoneDevice.objects.filter(user=user).values_list("phone_number", "locked_at").first()
    if row is None:
        return None, None
    return row[0] or None, row[1] is not None
