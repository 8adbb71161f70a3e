"""The challenge state machine: start, resend, verify, cancel.

Every state change of a challenge happens here. Views, the middleware and the
commands call these functions and never write challenge rows themselves.

Concurrency: each transition is one conditional ``UPDATE`` whose ``WHERE``
clause restates the precondition (still pending, not expired, attempts left,
nobody resent meanwhile). The row count says whether this request won, so 50
parallel guesses can never get more tries than allowed and one code elevates
at most once, without holding a row lock across the provider's network call.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from . import signals
from .backends import VerifyOutcome, get_backend
from .conf import app_settings
from .exceptions import (
    ChallengeExpired,
    ChallengeLocked,
    FactorLocked,
    InvalidPin,
    NoChallenge,
    ProviderError,
    ResendCooldown,
    TooManySends,
    VerificationFailed,
)
from .models import OtpChallenge, PhoneDevice, Status
from .phones import normalize_phone_number

logger = logging.getLogger("infobip_otp")

# Statuses a resend may revive: a failed send is retried by the user, never by us.
_RESENDABLE = (Status.PENDING, Status.FAILED)
# The public id of no challenge (uuid4 never makes it): looked up and refused
# like any other, so a missing challenge costs what an existing one does.
_NO_CHALLENGE = uuid.UUID(int=0)


def hash_session_key(session_key: str | None) -> str:
    """What a challenge stores to bind itself to a session (never the key itself)."""
    if not session_key:
        return ""
    return hashlib.sha256(session_key.encode()).hexdigest()


def get_active_challenge(
    *, purpose: str, user: Any = None, session_key: str | None = None
) -> OtpChallenge | None:
    """The newest usable challenge of this (user or session, purpose), if any."""
    return (
        OtpChallenge.objects.for_owner(
            purpose=purpose, user_id=_user_id(user), session_hash=hash_session_key(session_key)
        )
        .select_related("user")
        .filter(status__in=_RESENDABLE, expires_at__gt=timezone.now())
        .order_by("-pk")
        .first()
    )


def get_bound_challenge(
    public_id: Any, *, purpose: str, user: Any = None, session_key: str | None = None
) -> OtpChallenge | None:
    """The challenge ``public_id`` only if it belongs to this user, session and purpose.

    Callers pass an id they stored server-side (in the session), never one
    taken from the client. Without an id the query still runs (SECURITY T31).
    """
    try:
        challenge = OtpChallenge.objects.for_owner(
            purpose=purpose, user_id=_user_id(user), session_hash=hash_session_key(session_key)
        ).get(public_id=public_id or _NO_CHALLENGE)
    except (OtpChallenge.DoesNotExist, ValidationError, ValueError, TypeError):
        return None
    # The row belongs to ``user`` (the query says so): no join to load it again.
    challenge.user = user
    return challenge


def start_challenge(
    *,
    phone_number: str,
    purpose: str,
    user: Any = None,
    session_key: str | None = None,
    request: Any = None,
    factor_locked: bool | None = None,
    before_send: Callable[[OtpChallenge], None] | None = None,
) -> OtpChallenge:
    """Create a challenge for this owner and purpose, replacing any earlier one, and send.

    Raises ``PhoneNumberError`` for a refused number (before any provider
    call), ``FactorLocked`` for a locked user and ``ProviderError`` when the
    send failed (the challenge is then kept as ``failed``; a user resend may
    revive it and counts against the limits).

    ``factor_locked`` is the user's lock as the caller just read it (None:
    read it here). ``before_send`` is called with the stored challenge right
    before the provider call, for state that must be saved before an SMS can
    go out.
    """
    phone_number = normalize_phone_number(phone_number)
    if user is not None and (is_factor_locked(user) if factor_locked is None else factor_locked):
        raise FactorLocked()
    now = timezone.now()
    session_hash = hash_session_key(session_key)
    with transaction.atomic():
        challenge = OtpChallenge.objects.create(
            user=user,
            session_hash=session_hash,
            phone_number=phone_number,
            purpose=purpose,
            max_attempts=app_settings.MAX_ATTEMPTS,
            sends=1,
            created_at=now,
            last_sent_at=now,
            expires_at=now + timedelta(seconds=app_settings.PIN_TTL),
        )
        # One active challenge per owner and purpose. Only older rows are
        # cancelled, so two racing starts leave the newest one alive.
        OtpChallenge.objects.for_owner(
            purpose=purpose, user_id=_user_id(user), session_hash=session_hash
        ).filter(status__in=_RESENDABLE, pk__lt=challenge.pk).update(
            status=Status.CANCELLED, ended_at=now
        )
    if before_send is not None:
        before_send(challenge)
    _deliver(challenge, resend=False, request=request)
    return challenge


def resend_challenge(challenge: OtpChallenge, *, request: Any = None) -> OtpChallenge:
    """Send a fresh code for ``challenge`` after the (growing) cooldown.

    Each resend replaces the code (the previous one stops working) and moves
    the expiry to a full TTL from now; attempts are not reset, so resending
    never buys extra guesses.
    """
    challenge.refresh_from_db()
    now = timezone.now()
    # A failed send or an expired code may be replaced; a locked, verified or
    # cancelled challenge may not (that would hand out fresh guesses).
    if challenge.status not in (Status.PENDING, Status.FAILED, Status.EXPIRED):
        raise NoChallenge()
    if challenge.sends >= app_settings.MAX_SENDS:
        raise TooManySends(retry_after=app_settings.RESEND_COOLDOWN)
    wait = resend_wait(challenge, now)
    if wait:
        raise ResendCooldown(retry_after=wait)
    # Claim the resend: a racing request sees different sends/last_sent_at
    # and loses, so one click never turns into two SMS.
    claimed = OtpChallenge.objects.filter(
        pk=challenge.pk, sends=challenge.sends, last_sent_at=challenge.last_sent_at
    ).update(sends=F("sends") + 1, last_sent_at=now)
    if not claimed:
        raise ResendCooldown(retry_after=app_settings.RESEND_COOLDOWN)
    challenge.sends += 1
    challenge.last_sent_at = now
    _deliver(challenge, resend=True, request=request)
    return challenge


def resend_wait(challenge: OtpChallenge, now: Any = None) -> int:
    """Seconds until a resend is allowed: the cooldown doubles with each send."""
    if challenge.last_sent_at is None:
        return 0
    cooldown = app_settings.RESEND_COOLDOWN * (2 ** max(0, challenge.sends - 1))
    ready_at = challenge.last_sent_at + timedelta(seconds=cooldown)
    remaining = (ready_at - (now or timezone.now())).total_seconds()
    return max(0, int(remaining + 0.999))


def challenge_summary(challenge: OtpChallenge, now: Any = None) -> dict[str, Any]:
    """What a client may know of a challenge: purpose, seconds and attempts left."""
    now = now or timezone.now()
    return {
        "purpose": challenge.purpose,
        "expires_in": max(0, int((challenge.expires_at - now).total_seconds())),
        "attempts_left": challenge.attempts_left if challenge.status == Status.PENDING else 0,
        "resend_in": resend_wait(challenge, now),
    }


def verify_challenge(challenge: OtpChallenge, pin: str, *, request: Any = None) -> OtpChallenge:
    """Check ``pin`` against ``challenge``; return it verified or raise.

    Raises ``InvalidPin``, ``ChallengeExpired``, ``ChallengeLocked``,
    ``NoChallenge`` or ``FactorLocked`` (all ``VerificationFailed``), or
    ``ProviderUnavailable`` when the provider could not answer: that never
    verifies and does not count as the user's attempt.
    """
    user = challenge.user
    now = timezone.now()
    claim = OtpChallenge.objects.filter(
        pk=challenge.pk,
        status=Status.PENDING,
        expires_at__gt=now,
        attempts__lt=F("max_attempts"),
    )
    if user is not None:
        # A locked factor claims nothing; the refusal then reads the lock from
        # the device row it reads on every failure.
        claim = claim.exclude(
            Exists(PhoneDevice.objects.filter(user=OuterRef("user"), locked_at__isnull=False))
        )
    if not claim.update(attempts=F("attempts") + 1):
        raise _refusal(challenge, now, request, user)
    # This request's attempt; one counted meanwhile by a parallel request shows
    # in the figures of the next answer (the claim itself is exact).
    challenge.attempts += 1

    try:
        outcome = get_backend().verify(challenge, _clean_pin(pin))
    except ProviderError as exc:
        OtpChallenge.objects.filter(pk=challenge.pk, attempts__gt=0).update(
            attempts=F("attempts") - 1
        )
        logger.warning(
            "otp verify failed",
            extra={
                **_audit(challenge, "verify_failed", request),
                "provider_status": exc.http_status,
                "provider_code": exc.provider_code,
            },
        )
        raise

    if outcome is VerifyOutcome.VERIFIED:
        consumed = OtpChallenge.objects.filter(pk=challenge.pk, status=Status.PENDING).update(
            status=Status.VERIFIED, verified_at=now, ended_at=now
        )
        if not consumed:
            _reload(challenge)
            raise _failure(challenge, NoChallenge(), request, user)
        # Exactly what the UPDATE wrote: no need to read the row back.
        challenge.status, challenge.verified_at, challenge.ended_at = Status.VERIFIED, now, now
        if user is not None:
            PhoneDevice.objects.filter(user=user).update(failure_count=0, last_used_at=now)
        logger.info("otp verified", extra=_audit(challenge, "verified", request))
        signals.otp_verified.send(
            sender=OtpChallenge, challenge=challenge, user=user, request=request
        )
        return challenge

    if outcome is VerifyOutcome.EXPIRED:
        _end(challenge, Status.EXPIRED, now)
        raise _failure(challenge, ChallengeExpired(), request, user)
    if _count_user_failure(challenge, user, request):
        _end(challenge, Status.LOCKED, now)
        raise _failure(challenge, FactorLocked(), request, user)
    if outcome is VerifyOutcome.EXHAUSTED or challenge.attempts >= challenge.max_attempts:
        _end(challenge, Status.LOCKED, now)
        raise _failure(challenge, ChallengeLocked(), request, user)
    raise _failure(challenge, InvalidPin(attempts_left=challenge.attempts_left), request, user)


def refuse_missing_challenge(
    *, purpose: str, user: Any = None, request: Any = None
) -> VerificationFailed:
    """The refusal of a code sent when there is no challenge to check it against.

    It goes through :func:`verify_challenge` with a stand-in challenge that has
    no row, so it runs the statements of any refused code (against no row) and
    a missing challenge cannot be told from a wrong, locked or expired one by
    its timing (SECURITY T31), as Django's ``ModelBackend`` hashes a password
    for an unknown user. Returns ``NoChallenge`` (``FactorLocked`` for a locked
    user); ``otp_failed`` is not sent, as there is no challenge.
    """
    stand_in = OtpChallenge(
        public_id=_NO_CHALLENGE,
        user=user,
        purpose=purpose,
        status=Status.CANCELLED,
        max_attempts=0,
        expires_at=timezone.now(),
    )
    try:
        verify_challenge(stand_in, "", request=request)
    except VerificationFailed as error:
        return error
    raise AssertionError("a challenge without a row cannot be verified")  # pragma: no cover


def cancel_challenge(challenge: OtpChallenge) -> None:
    """End a challenge that is still open (logout, flow abandoned)."""
    _end(challenge, Status.CANCELLED, timezone.now(), from_statuses=_RESENDABLE)


def is_factor_locked(user: Any) -> bool:
    """Whether too many consecutive failures locked this user's SMS factor."""
    return PhoneDevice.objects.filter(user=user, locked_at__isnull=False).exists()


def unlock_factor(user: Any) -> int:
    """Clear a lockout (admin action); returns the number of devices changed."""
    return PhoneDevice.objects.filter(user=user).update(failure_count=0, locked_at=None)


def remove_phone(user: Any) -> int:
    """Forget ``user``'s confirmed phone and end their open challenges.

    The user enrols a number again before the SMS factor works again; a code
    already sent can no longer be used. Returns the phones removed (0 or 1).
    """
    with transaction.atomic():
        removed, _ = PhoneDevice.objects.filter(user=user).delete()
        cancel_open_challenges(user)
    return removed


def cancel_open_challenges(user: Any) -> int:
    """End every open challenge of ``user``: codes already sent stop working.

    For a removed or changed number (SECURITY T40): a login code sent to the
    old number, perhaps to a stolen SIM, must not sign anyone in afterwards.
    Returns the number of challenges ended.
    """
    return OtpChallenge.objects.filter(user=user, status__in=_RESENDABLE).update(
        status=Status.CANCELLED, ended_at=timezone.now()
    )


def _deliver(challenge: OtpChallenge, *, resend: bool, request: Any) -> None:
    try:
        sent = get_backend().send(challenge)
    except ProviderError as exc:
        _end(challenge, Status.FAILED, timezone.now(), from_statuses=_RESENDABLE)
        logger.warning(
            "otp send failed",
            extra={
                **_audit(challenge, "send_failed", request),
                "provider_status": exc.http_status,
                "provider_code": exc.provider_code,
            },
        )
        raise
    now = timezone.now()
    expires_at = now + timedelta(seconds=app_settings.PIN_TTL)
    OtpChallenge.objects.filter(pk=challenge.pk).update(
        provider_pin_id=sent.provider_pin_id,
        pin_digest=sent.pin_digest,
        expires_at=expires_at,
        status=Status.PENDING,
        ended_at=None,
    )
    challenge.provider_pin_id = sent.provider_pin_id
    challenge.pin_digest = sent.pin_digest
    challenge.expires_at = expires_at
    challenge.status = Status.PENDING
    challenge.ended_at = None
    logger.info("otp sent", extra=_audit(challenge, "resent" if resend else "sent", request))
    signals.otp_sent.send(sender=OtpChallenge, challenge=challenge, resend=resend, request=request)


def _refusal(challenge: OtpChallenge, now: Any, request: Any, user: Any) -> VerificationFailed:
    """Why an attempt could not be claimed; ends a challenge whose time or attempts ran out.

    Whatever the reason, the same statements run (a read, one conditional
    ``UPDATE`` that changes nothing unless the challenge has just run out,
    then :func:`_failure`'s two reads), as many as a wrong code runs after
    its claim, so the failures cannot be told apart by their timing
    (SECURITY T31). The reason is taken from :func:`_failure`'s read, which
    also sees a challenge that a parallel request ended meanwhile.
    """
    _reload(challenge)
    over = Status.EXPIRED if challenge.expires_at <= now else Status.LOCKED
    OtpChallenge.objects.filter(pk=challenge.pk, status=Status.PENDING).exclude(
        expires_at__gt=now, attempts__lt=F("max_attempts")
    ).update(status=over, ended_at=now)
    return _failure(challenge, None, request, user)


def _failure(
    challenge: OtpChallenge, error: VerificationFailed | None, request: Any, user: Any
) -> VerificationFailed:
    """Log and signal a refused code; the same two reads whatever the reason (T31).

    A locked factor answers ``FactorLocked`` whatever else was wrong.
    """
    _reload(challenge)
    if error is None:
        error = _ended_by(challenge)
    # Read here for every failure (receivers get it), not by the receivers for some.
    device = PhoneDevice.objects.filter(user=user).first()
    if device is not None and device.locked_at is not None and not isinstance(error, FactorLocked):
        error = FactorLocked()
    usable = challenge.status == Status.PENDING and not isinstance(error, FactorLocked)
    error.attempts_left = challenge.attempts_left if usable else 0
    logger.info("otp failed", extra={**_audit(challenge, "failed", request), "reason": error.code})
    if challenge.pk is not None:
        signals.otp_failed.send(
            sender=OtpChallenge,
            challenge=challenge,
            user=user,
            reason=error.code,
            request=request,
            device=device,
        )
    return error


def _ended_by(challenge: OtpChallenge) -> VerificationFailed:
    """The refusal a challenge's status calls for when no attempt could be claimed."""
    if challenge.status == Status.EXPIRED:
        return ChallengeExpired()
    if challenge.status == Status.LOCKED:
        return ChallengeLocked()
    return NoChallenge()


def _reload(challenge: OtpChallenge, *fields: str) -> None:
    """``refresh_from_db``; a stand-in without a row (``refuse_missing_challenge``) stays as is."""
    with contextlib.suppress(OtpChallenge.DoesNotExist):
        challenge.refresh_from_db(fields=list(fields) or None)


def _end(
    challenge: OtpChallenge,
    status: str,
    now: Any,
    from_statuses: tuple[str, ...] = (Status.PENDING,),
) -> None:
    OtpChallenge.objects.filter(pk=challenge.pk, status__in=from_statuses).update(
        status=status, ended_at=now
    )
    challenge.refresh_from_db(fields=["status", "ended_at"])


def _count_user_failure(challenge: OtpChallenge, user: Any, request: Any) -> bool:
    """Count a wrong code against the account; True when this one locked the factor."""
    if user is None:
        return False
    PhoneDevice.objects.filter(user=user).update(failure_count=F("failure_count") + 1)
    locked = PhoneDevice.objects.filter(
        user=user, locked_at__isnull=True, failure_count__gte=app_settings.LOCKOUT_THRESHOLD
    ).update(locked_at=timezone.now())
    if locked:
        device = PhoneDevice.objects.get(user=user)
        logger.warning(
            "otp factor locked",
            extra={**_audit(challenge, "locked", request), "phone": device.masked_phone},
        )
        signals.otp_locked.send(sender=PhoneDevice, user=user, device=device, request=request)
    return bool(locked)


def _clean_pin(pin: Any) -> str:
    return "".join(str(pin).split()) if pin is not None else ""


def _user_id(user: Any) -> int | None:
    return None if user is None else user.pk


def _audit(challenge: OtpChallenge, event: str, request: Any) -> dict[str, Any]:
    """Structured fields for a log record; never a PIN or a full number."""
    return {
        "event": f"otp.{event}",
        "challenge": str(challenge.public_id),
        "user_id": challenge.user_id,
        "phone": challenge.masked_phone,
        "purpose": challenge.purpose,
        "ip": getattr(request, "META", {}).get("REMOTE_ADDR") if request is not None else None,
    }
