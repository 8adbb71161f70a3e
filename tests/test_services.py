"""The challenge lifecycle through the service layer, with the locmem backend."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from infobip_otp import services, signals
from infobip_otp.backends import locmem
from infobip_otp.exceptions import (
    ChallengeExpired,
    ChallengeLocked,
    FactorLocked,
    InvalidPin,
    NoChallenge,
    ResendCooldown,
    TooManySends,
)
from infobip_otp.models import OtpChallenge, PhoneDevice, Purpose, Status

pytestmark = pytest.mark.django_db

PHONE = "+447400123456"
SESSION = "session-key-a"


def start(user, **kwargs):
    kwargs.setdefault("phone_number", PHONE)
    kwargs.setdefault("purpose", Purpose.LOGIN)
    kwargs.setdefault("session_key", SESSION)
    return services.start_challenge(user=user, **kwargs)


def wrong_pin(pin):
    return "".join(str((int(d) + 1) % 10) for d in pin)


def test_start_sends_one_code_and_stores_only_a_digest(user):
    challenge = start(user)
    assert len(locmem.outbox) == 1
    pin = locmem.outbox[0].pin
    assert len(pin) == 6 and pin.isdigit()
    challenge.refresh_from_db()
    assert challenge.status == Status.PENDING
    assert challenge.sends == 1
    assert challenge.phone_number == PHONE
    assert pin not in challenge.pin_digest
    assert len(challenge.pin_digest) == 64
    assert challenge.session_hash == services.hash_session_key(SESSION)
    assert SESSION not in challenge.session_hash


def test_national_number_is_stored_as_e164(user):
    challenge = start(user, phone_number="07400 123456")
    assert challenge.phone_number == PHONE


def test_right_pin_verifies_once(user):
    challenge = start(user)
    pin = locmem.last_pin()
    verified = services.verify_challenge(challenge, pin)
    assert verified.status == Status.VERIFIED
    assert verified.verified_at is not None
    with pytest.raises(NoChallenge):
        services.verify_challenge(challenge, pin)
    challenge.refresh_from_db()
    assert challenge.status == Status.VERIFIED


def test_wrong_pin_counts_an_attempt(user):
    challenge = start(user)
    with pytest.raises(InvalidPin) as exc:
        services.verify_challenge(challenge, wrong_pin(locmem.last_pin()))
    assert exc.value.attempts_left == 4
    assert exc.value.as_dict() == {
        "detail": "The code is not correct.",
        "code": "invalid_pin",
        "attempts_left": 4,
    }
    challenge.refresh_from_db()
    assert challenge.attempts == 1
    assert challenge.status == Status.PENDING


def test_max_attempts_lock_the_challenge_even_for_the_right_pin(user, settings):
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 3
    challenge = start(user)
    pin = locmem.last_pin()
    for _ in range(2):
        with pytest.raises(InvalidPin):
            services.verify_challenge(challenge, wrong_pin(pin))
    with pytest.raises(ChallengeLocked):
        services.verify_challenge(challenge, wrong_pin(pin))
    with pytest.raises(ChallengeLocked):
        services.verify_challenge(challenge, pin)
    challenge.refresh_from_db()
    assert challenge.status == Status.LOCKED
    assert challenge.attempts == 3


def test_expired_code_is_refused_without_counting(user):
    challenge = start(user)
    pin = locmem.last_pin()
    with (
        time_machine.travel(challenge.expires_at + timedelta(seconds=1)),
        pytest.raises(ChallengeExpired),
    ):
        services.verify_challenge(challenge, pin)
    challenge.refresh_from_db()
    assert challenge.status == Status.EXPIRED
    assert challenge.attempts == 0


def test_new_challenge_cancels_the_previous_one(user):
    first = start(user)
    first_pin = locmem.last_pin()
    second = start(user)
    first.refresh_from_db()
    assert first.status == Status.CANCELLED
    assert OtpChallenge.objects.active().filter(user=user).count() == 1
    with pytest.raises(NoChallenge):
        services.verify_challenge(first, first_pin)
    assert (
        services.get_active_challenge(purpose=Purpose.LOGIN, user=user, session_key=SESSION)
        == second
    )


def test_other_session_or_purpose_keeps_its_own_challenge(user):
    login = start(user)
    other_session = start(user, session_key="session-key-b")
    enroll = start(user, purpose=Purpose.ENROLL)
    for challenge in (login, other_session, enroll):
        challenge.refresh_from_db()
        assert challenge.status == Status.PENDING


def test_code_of_one_challenge_fails_on_another(user):
    a = start(user, session_key="session-a")
    pin_a = locmem.last_pin()
    b = start(user, session_key="session-b")
    pin_b = locmem.last_pin()
    if pin_a == pin_b:
        pytest.fail("two random PINs collided; rerun")  # 1 in a million
    with pytest.raises(InvalidPin):
        services.verify_challenge(b, pin_a)
    b.refresh_from_db()
    assert b.attempts == 1
    a.refresh_from_db()
    assert a.status == Status.PENDING and a.attempts == 0


def test_bound_challenge_is_resolved_only_for_its_owner(user, other_user):
    challenge = start(user)
    found = services.get_bound_challenge(
        challenge.public_id, purpose=Purpose.LOGIN, user=user, session_key=SESSION
    )
    assert found == challenge
    for kwargs in (
        {"purpose": Purpose.LOGIN, "user": other_user, "session_key": SESSION},
        {"purpose": Purpose.LOGIN, "user": user, "session_key": "another-session"},
        {"purpose": Purpose.ENROLL, "user": user, "session_key": SESSION},
    ):
        assert services.get_bound_challenge(challenge.public_id, **kwargs) is None
    assert (
        services.get_bound_challenge(
            "not-a-uuid", purpose=Purpose.LOGIN, user=user, session_key=SESSION
        )
        is None
    )


def test_resend_needs_the_cooldown_which_grows(user, settings):
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 30
    settings.INFOBIP_OTP_MAX_SENDS = 4
    with time_machine.travel(timezone.now(), tick=False) as clock:
        challenge = start(user)
        with pytest.raises(ResendCooldown) as exc:
            services.resend_challenge(challenge)
        assert exc.value.retry_after == 30
        clock.shift(30)
        services.resend_challenge(challenge)
        with pytest.raises(ResendCooldown) as exc:
            services.resend_challenge(challenge)
        assert exc.value.retry_after == 60
        clock.shift(60)
        services.resend_challenge(challenge)
        assert services.resend_wait(challenge) == 120
    assert len(locmem.outbox) == 3
    challenge.refresh_from_db()
    assert challenge.sends == 3


def test_resend_replaces_the_code_and_keeps_attempts(user, settings):
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    challenge = start(user)
    old_pin = locmem.last_pin()
    with pytest.raises(InvalidPin):
        services.verify_challenge(challenge, wrong_pin(old_pin))
    services.resend_challenge(challenge)
    new_pin = locmem.last_pin()
    if new_pin == old_pin:
        pytest.fail("two random PINs collided; rerun")
    with pytest.raises(InvalidPin) as exc:
        services.verify_challenge(challenge, old_pin)
    assert exc.value.attempts_left == 3
    assert services.verify_challenge(challenge, new_pin).status == Status.VERIFIED


def test_sends_per_challenge_are_capped(user, settings):
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    settings.INFOBIP_OTP_MAX_SENDS = 2
    challenge = start(user)
    services.resend_challenge(challenge)
    with pytest.raises(TooManySends) as exc:
        services.resend_challenge(challenge)
    assert exc.value.status_code == 429
    assert len(locmem.outbox) == 2


def test_resend_of_an_ended_challenge_is_refused(user, settings):
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    challenge = start(user)
    services.verify_challenge(challenge, locmem.last_pin())
    with pytest.raises(NoChallenge):
        services.resend_challenge(challenge)
    assert len(locmem.outbox) == 1


def test_cancel_ends_the_challenge(user):
    challenge = start(user)
    services.cancel_challenge(challenge)
    assert challenge.status == Status.CANCELLED
    with pytest.raises(NoChallenge):
        services.verify_challenge(challenge, locmem.last_pin())


def test_consecutive_failures_across_challenges_lock_the_factor(user, settings):
    settings.INFOBIP_OTP_LOCKOUT_THRESHOLD = 4
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 2
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    locked = []

    def receiver(**kwargs):
        locked.append(kwargs["user"])

    signals.otp_locked.connect(receiver)
    try:
        challenge = start(user)
        pin = locmem.last_pin()
        with pytest.raises(InvalidPin):
            services.verify_challenge(challenge, wrong_pin(pin))
        with pytest.raises(ChallengeLocked):
            services.verify_challenge(challenge, wrong_pin(pin))
        challenge = start(user)
        pin = locmem.last_pin()
        with pytest.raises(InvalidPin):
            services.verify_challenge(challenge, wrong_pin(pin))
        with pytest.raises(FactorLocked):
            services.verify_challenge(challenge, wrong_pin(pin))
    finally:
        signals.otp_locked.disconnect(receiver)
    device = PhoneDevice.objects.get(user=user)
    assert device.failure_count == 4
    assert device.is_locked
    assert locked == [user]
    with pytest.raises(FactorLocked):
        start(user)
    assert services.unlock_factor(user) == 1
    assert start(user).status == Status.PENDING


def test_success_resets_only_this_users_failure_count(user, other_user):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    PhoneDevice.objects.create(user=other_user, phone_number="+447400123999", failure_count=3)
    challenge = start(user)
    pin = locmem.last_pin()
    with pytest.raises(InvalidPin):
        services.verify_challenge(challenge, wrong_pin(pin))
    assert PhoneDevice.objects.get(user=user).failure_count == 1
    services.verify_challenge(challenge, pin)
    assert PhoneDevice.objects.get(user=user).failure_count == 0
    assert PhoneDevice.objects.get(user=other_user).failure_count == 3


def test_signals_carry_no_pin(user):
    received = []

    def receiver(**kwargs):
        received.append(kwargs)

    signals.otp_sent.connect(receiver)
    signals.otp_verified.connect(receiver)
    signals.otp_failed.connect(receiver)
    try:
        challenge = start(user)
        pin = locmem.last_pin()
        with pytest.raises(InvalidPin):
            services.verify_challenge(challenge, wrong_pin(pin))
        services.verify_challenge(challenge, pin)
    finally:
        for signal in (signals.otp_sent, signals.otp_verified, signals.otp_failed):
            signal.disconnect(receiver)
    assert [kw["signal"] for kw in received] == [
        signals.otp_sent,
        signals.otp_failed,
        signals.otp_verified,
    ]
    assert received[1]["reason"] == "invalid_pin"
    for kwargs in received:
        assert pin not in repr(kwargs)
        assert PHONE not in repr(kwargs)


def test_logs_carry_no_pin_or_full_number(user, caplog):
    caplog.set_level("DEBUG", logger="infobip_otp")
    challenge = start(user)
    pin = locmem.last_pin()
    with pytest.raises(InvalidPin):
        services.verify_challenge(challenge, wrong_pin(pin))
    services.verify_challenge(challenge, pin)
    events = [r.event for r in caplog.records if hasattr(r, "event")]
    assert events == ["otp.sent", "otp.failed", "otp.verified"]
    for record in caplog.records:
        dump = repr(record.__dict__)
        assert pin not in dump
        assert PHONE not in dump
        assert "+44*******456" in dump


def test_an_expired_code_can_be_replaced_but_attempts_carry_over(user, settings):
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    challenge = start(user)
    with pytest.raises(InvalidPin):
        services.verify_challenge(challenge, wrong_pin(locmem.last_pin()))
    later = challenge.expires_at + timedelta(seconds=1)
    with time_machine.travel(later, tick=False):
        with pytest.raises(ChallengeExpired):
            services.verify_challenge(challenge, locmem.last_pin())
        services.resend_challenge(challenge)
        challenge.refresh_from_db()
        assert challenge.status == Status.PENDING
        assert challenge.expires_at == later + timedelta(seconds=300)
        assert challenge.attempts == 1
        assert services.verify_challenge(challenge, locmem.last_pin()).status == Status.VERIFIED


def test_a_locked_challenge_cannot_be_replaced(user, settings):
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 1
    challenge = start(user)
    with pytest.raises(ChallengeLocked):
        services.verify_challenge(challenge, wrong_pin(locmem.last_pin()))
    with pytest.raises(NoChallenge):
        services.resend_challenge(challenge)
    assert len(locmem.outbox) == 1
