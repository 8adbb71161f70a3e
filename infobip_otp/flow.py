"""The login step and phone enrolment for one request: session state + services.

The HTML views and the DRF views both call these functions, so the two flows
cannot drift apart. The challenge is always resolved from the server side
(the session, or the token's user), never from an id in the request
(SECURITY rule 2). Rate limits and SMS-pumping guards run here, before any
provider call, for every client.

Session clients keep their progress in the session (``state.py``). Token
clients (DRF ``TokenAuthentication``, JWT) have no session: their challenges
are bound to the user and the token, and a token counts as verified once a
login challenge bound to it was verified.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from . import ratelimits, services, signals, state
from .conf import app_settings
from .exceptions import NoChallenge, NotAuthenticated, OtpRequired, ProviderError
from .models import OtpChallenge, PhoneDevice, Purpose, Status
from .phones import mask_phone_number, normalize_phone_number

ANONYMOUS = "anonymous"
NOT_REQUIRED = state.NOT_REQUIRED
SESSION_PHONE_KEY = "_infobip_otp_phone"


def is_token_client(request: Any) -> bool:
    """Authenticated by something other than the session (a DRF token, a JWT)."""
    return getattr(request, "auth", None) is not None


def binding_key(request: Any) -> str | None:
    """What a challenge binds to: the session key, the token, or only the user."""
    if is_token_client(request):
        key = getattr(request.auth, "key", None)
        return f"token:{key}" if key else None
    session = getattr(request, "session", None)
    if session is None:
        return None
    if session.session_key is None:
        session.save()
    return session.session_key


def login_state(request: Any) -> str:
    """``anonymous``, ``pending``, ``enroll``, ``verified`` or ``not_required``."""
    user = request.user
    if not user.is_authenticated:
        return ANONYMOUS
    if is_token_client(request):
        kind = state.required_kind(user)
        if kind is None:
            return NOT_REQUIRED
        return state.VERIFIED if token_verified(request) else kind
    current = state.get_state(request)
    if current and str(current.get("user_id")) == str(user.pk):
        return str(current.get("state"))
    return state.adopt(request)


def token_verified(request: Any) -> bool:
    """Whether a code was verified for this token (bound by its key's hash)."""
    binding = binding_key(request)
    if not binding:
        return False
    return OtpChallenge.objects.filter(
        user=request.user,
        purpose__in=(Purpose.LOGIN, Purpose.ENROLL),
        status=Status.VERIFIED,
        session_hash=services.hash_session_key(binding),
    ).exists()


def login_challenge(request: Any) -> OtpChallenge | None:
    """The challenge of the pending login, if one was started."""
    if is_token_client(request):
        return services.get_active_challenge(
            purpose=Purpose.LOGIN, user=request.user, session_key=binding_key(request)
        )
    current = state.get_state(request) or {}
    return services.get_bound_challenge(
        current.get("challenge"),
        purpose=Purpose.LOGIN,
        user=request.user,
        session_key=binding_key(request),
    )


def require_pending(request: Any) -> None:
    """Raise unless this request's login waits for a code."""
    current = login_state(request)
    if current == ANONYMOUS:
        raise NotAuthenticated()
    if current != state.PENDING:
        raise NoChallenge()


def send_first_login_code(request: Any) -> OtpChallenge | None:
    """Send the first code of this login, once: a reload never sends again.

    Returns the login challenge (None if the first send already failed).
    """
    require_pending(request)
    current = state.get_state(request) or {}
    if current.get("sent"):
        return login_challenge(request)
    # Recorded before anything else, so a reload during a slow or failing
    # send, or after a refused one, cannot trigger a second SMS.
    state.update(request, sent=True)
    save_session(request)
    return _start_login(request)


def send_login_code(request: Any) -> OtpChallenge:
    """First code if none went out yet, otherwise a resend after the cooldown."""
    require_pending(request)
    current = state.get_state(request) or {}
    # A session login's first send has no challenge yet: nothing to look up.
    first = not is_token_client(request) and not current.get("challenge")
    challenge = None if first else login_challenge(request)
    if challenge is None:
        if not is_token_client(request) and current.get("sent") and current.get("challenge"):
            # The login's challenge ended (locked, expired, cancelled):
            # the user must sign in again rather than get fresh guesses.
            raise NoChallenge()
        return _start_login(request)
    ratelimits.check_send(request, challenge.phone_number, binding_key(request))
    return services.resend_challenge(challenge, request=request)


def verify_login_code(request: Any, pin: str) -> OtpChallenge:
    """Verify ``pin`` for the pending login; on success the login is complete."""
    require_pending(request)
    ratelimits.check_verify(request, binding_key(request))
    challenge = login_challenge(request)
    if challenge is None:
        raise services.refuse_missing_challenge(
            purpose=Purpose.LOGIN, user=request.user, request=request
        )
    services.verify_challenge(challenge, pin, request=request)
    if not is_token_client(request):
        state.complete(request)
    return challenge


def _start_login(request: Any) -> OtpChallenge:
    phone, locked = state.get_user_factor(request.user)
    if not phone:
        raise NoChallenge()
    binding = binding_key(request)
    ratelimits.check_send(request, phone, binding)
    if is_token_client(request):
        return services.start_challenge(
            phone_number=phone,
            purpose=Purpose.LOGIN,
            user=request.user,
            session_key=binding,
            request=request,
            factor_locked=locked,
        )

    def record(challenge: OtpChallenge) -> None:
        # Saved before sending: a failed send answers 503, Django does not
        # save the session of a 5xx answer, and the code page would then
        # send again on its own (SECURITY T42).
        state.update(request, sent=True, challenge=str(challenge.public_id))
        save_session(request)

    try:
        return services.start_challenge(
            phone_number=phone,
            purpose=Purpose.LOGIN,
            user=request.user,
            session_key=binding,
            request=request,
            factor_locked=locked,
            before_send=record,
        )
    except ProviderError:
        # The send failed: the next send starts afresh (the code was sent, or
        # tried, so a reload still sends nothing on its own).
        state.update(request, challenge=None)
        save_session(request)
        raise


def save_session(request: Any) -> None:
    """Write the session now; the response then writes it again only if it changes.

    Django's ``SessionMiddleware`` saves every modified session after the
    view: a second write of the same data. A session without a key yet keeps
    its ``modified`` flag, so its cookie is still set.
    """
    session = request.session
    had_key = session.session_key is not None
    session.save()
    if had_key:
        session.modified = False


def phone_purpose(request: Any) -> str:
    """``enroll`` for a first phone, ``verify_phone`` to change one or for anonymous."""
    user = request.user
    if not user.is_authenticated:
        return Purpose.VERIFY_PHONE
    if login_state(request) == state.ENROLL or state.get_user_phone(user) is None:
        return Purpose.ENROLL
    return Purpose.VERIFY_PHONE


def can_change_phone(request: Any) -> bool:
    """Adding a first phone is enrolment; changing one needs a verified login."""
    current = login_state(request)
    if current == ANONYMOUS:
        return bool(app_settings.ANONYMOUS_PHONE_VERIFICATION)
    if current == state.PENDING:
        return False
    if phone_purpose(request) == Purpose.ENROLL:
        return True
    return current == state.VERIFIED


def _require_phone_change(request: Any) -> None:
    if not can_change_phone(request):
        raise OtpRequired() if request.user.is_authenticated else NotAuthenticated()


def start_phone_verification(request: Any, phone_number: str) -> OtpChallenge:
    """Send a code to a new number (enrolment, change, or anonymous sign-up check)."""
    _require_phone_change(request)
    phone_number = normalize_phone_number(phone_number)
    binding = binding_key(request)
    ratelimits.check_send(request, phone_number, binding)
    user = request.user if request.user.is_authenticated else None
    challenge = services.start_challenge(
        phone_number=phone_number,
        purpose=phone_purpose(request),
        user=user,
        session_key=binding,
        request=request,
    )
    return challenge


def phone_challenge(request: Any) -> OtpChallenge | None:
    """The active phone challenge of this user/session, if any."""
    user = request.user if request.user.is_authenticated else None
    return services.get_active_challenge(
        purpose=phone_purpose(request), user=user, session_key=binding_key(request)
    )


def resend_phone_code(request: Any) -> OtpChallenge:
    challenge = phone_challenge(request)
    if challenge is None:
        raise NoChallenge()
    ratelimits.check_send(request, challenge.phone_number, binding_key(request))
    return services.resend_challenge(challenge, request=request)


def verify_phone_code(request: Any, pin: str) -> OtpChallenge:
    """Confirm the new number; completes an enrolment login.

    For a signed-in user the number becomes their PhoneDevice (trusted
    browsers bound to the old number stop working). For an anonymous
    session (``INFOBIP_OTP_ANONYMOUS_PHONE_VERIFICATION``) the verified
    number is kept in the session under ``SESSION_PHONE_KEY``.
    """
    _require_phone_change(request)
    ratelimits.check_verify(request, binding_key(request))
    challenge = phone_challenge(request)
    if challenge is None:
        user = request.user if request.user.is_authenticated else None
        raise services.refuse_missing_challenge(
            purpose=phone_purpose(request), user=user, request=request
        )
    services.verify_challenge(challenge, pin, request=request)
    if not request.user.is_authenticated:
        request.session[SESSION_PHONE_KEY] = challenge.phone_number
        return challenge
    old_phone = state.get_user_phone(request.user)
    with transaction.atomic():
        PhoneDevice.objects.update_or_create(
            user=request.user,
            defaults={
                "phone_number": challenge.phone_number,
                "confirmed_at": timezone.now(),
                "failure_count": 0,
                "locked_at": None,
            },
        )
        if old_phone and old_phone != challenge.phone_number:
            # Codes already sent to the old number stop working (SECURITY T40).
            services.cancel_open_challenges(request.user)
    signals.otp_phone_changed.send(
        sender=PhoneDevice,
        user=request.user,
        old_phone=mask_phone_number(old_phone) if old_phone else None,
        new_phone=challenge.masked_phone,
        request=request,
    )
    if not is_token_client(request) and login_state(request) == state.ENROLL:
        state.complete(request)
    return challenge
