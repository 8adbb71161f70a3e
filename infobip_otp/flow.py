"""The login step and phone enrolment for one request: session state + services.

The HTML views and the DRF views both call these functions, so the two
flows cannot drift apart. The challenge is always resolved from the
server-side session (or the token's user), never from an id in the request
(SECURITY rule 2).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from . import services, state
from .exceptions import NoChallenge, OtpRequired
from .models import OtpChallenge, PhoneDevice, Purpose


def session_key(request: Any) -> str | None:
    """The session key a challenge binds to; None for token-authenticated clients."""
    session = getattr(request, "session", None)
    if session is None or getattr(request, "auth", None) is not None:
        return None
    if session.session_key is None:
        session.save()
    return session.session_key


def login_challenge(request: Any) -> OtpChallenge | None:
    """The challenge of the pending login in this session, if one was started."""
    current = state.get_state(request) or {}
    return services.get_bound_challenge(
        current.get("challenge"),
        purpose=Purpose.LOGIN,
        user=request.user,
        session_key=session_key(request),
    )


def require_pending(request: Any) -> dict[str, Any]:
    """The pending state of this session or ``OtpRequired``/``NoChallenge``."""
    current = state.get_state(request)
    if not request.user.is_authenticated or not current:
        raise OtpRequired()
    if current.get("state") != state.PENDING or str(current.get("user_id")) != str(request.user.pk):
        raise NoChallenge()
    return current


def send_first_login_code(request: Any) -> OtpChallenge | None:
    """Send the first code of this login, once: a reload never sends again.

    Returns the login challenge (None if the first send already failed).
    """
    current = require_pending(request)
    if current.get("sent"):
        return login_challenge(request)
    # Recorded before sending, so a reload during a slow or failing send
    # cannot trigger a second SMS.
    state.update(request, sent=True)
    request.session.save()
    return _start_login(request)


def resend_login_code(request: Any) -> OtpChallenge:
    """First code if none went out yet, otherwise a resend after the cooldown."""
    current = require_pending(request)
    challenge = login_challenge(request)
    if challenge is None:
        if current.get("sent") and current.get("challenge"):
            raise NoChallenge()
        state.update(request, sent=True)
        return _start_login(request)
    return services.resend_challenge(challenge, request=request)


def verify_login_code(request: Any, pin: str) -> OtpChallenge:
    """Verify ``pin`` for the pending login; on success the session is complete."""
    require_pending(request)
    challenge = login_challenge(request)
    if challenge is None:
        raise NoChallenge()
    services.verify_challenge(challenge, pin, request=request)
    state.complete(request)
    return challenge


def _start_login(request: Any) -> OtpChallenge:
    phone = state.get_user_phone(request.user)
    if not phone:
        raise NoChallenge()
    challenge = services.start_challenge(
        phone_number=phone,
        purpose=Purpose.LOGIN,
        user=request.user,
        session_key=session_key(request),
        request=request,
    )
    state.update(request, challenge=str(challenge.public_id))
    return challenge


def phone_purpose(request: Any) -> str:
    """``enroll`` for a first phone, ``verify_phone`` to change a confirmed one."""
    current = state.get_state(request) or {}
    if current.get("state") == state.ENROLL or state.get_user_phone(request.user) is None:
        return Purpose.ENROLL
    return Purpose.VERIFY_PHONE


def can_change_phone(request: Any) -> bool:
    """A first phone may be added at enrolment; changing one needs a verified session."""
    if not request.user.is_authenticated:
        return False
    current = state.get_state(request) or {}
    if current.get("state") == state.PENDING:
        return False
    if phone_purpose(request) == Purpose.ENROLL:
        return True
    return current.get("state") == state.VERIFIED


def start_phone_verification(request: Any, phone_number: str) -> OtpChallenge:
    """Send a code to a new number for the signed-in user."""
    if not can_change_phone(request):
        raise OtpRequired()
    challenge = services.start_challenge(
        phone_number=phone_number,
        purpose=phone_purpose(request),
        user=request.user,
        session_key=session_key(request),
        request=request,
    )
    state.update(request, phone_challenge=str(challenge.public_id))
    return challenge


def phone_challenge(request: Any) -> OtpChallenge | None:
    current = state.get_state(request) or {}
    return services.get_bound_challenge(
        current.get("phone_challenge"),
        purpose=phone_purpose(request),
        user=request.user,
        session_key=session_key(request),
    )


def verify_phone_code(request: Any, pin: str) -> PhoneDevice:
    """Confirm the new number; completes an enrolment login."""
    if not can_change_phone(request):
        raise OtpRequired()
    challenge = phone_challenge(request)
    if challenge is None:
        raise NoChallenge()
    services.verify_challenge(challenge, pin, request=request)
    with transaction.atomic():
        device, _ = PhoneDevice.objects.update_or_create(
            user=request.user,
            defaults={
                "phone_number": challenge.phone_number,
                "confirmed_at": timezone.now(),
                "failure_count": 0,
                "locked_at": None,
            },
        )
    current = state.get_state(request) or {}
    if current.get("state") == state.ENROLL:
        state.complete(request)
    else:
        state.update(request, phone_challenge=None)
    return device
