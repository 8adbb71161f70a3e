"""E-mail to the user on repeated failures, lockout and a changed phone (T40, T49)."""

import pytest
from django.core import mail

from infobip_otp import services
from infobip_otp.backends import locmem
from infobip_otp.exceptions import VerificationFailed
from infobip_otp.models import PhoneDevice, Purpose

pytestmark = pytest.mark.django_db

PHONE = "+447400123456"


class FakeRequest:
    META = {"REMOTE_ADDR": "203.0.113.9"}
    headers = {"user-agent": "Mozilla/5.0 TestBrowser"}


def fail_once(user):
    challenge = services.start_challenge(
        phone_number=PHONE, purpose=Purpose.LOGIN, user=user, session_key="s"
    )
    pin = locmem.last_pin()
    with pytest.raises(VerificationFailed):
        services.verify_challenge(
            challenge, str((int(pin) + 1) % 10**6).zfill(6), request=FakeRequest()
        )


def test_user_is_mailed_once_after_the_threshold(user, settings):
    settings.INFOBIP_OTP_NOTIFY_AFTER_FAILURES = 3
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    for _ in range(2):
        fail_once(user)
    assert mail.outbox == []
    fail_once(user)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert message.subject == "Wrong sign-in codes were entered for your account"
    assert "3 wrong codes in a row" in message.body
    assert "203.0.113.9" in message.body
    assert "TestBrowser" in message.body
    assert PHONE not in message.body
    fail_once(user)
    assert len(mail.outbox) == 1


def test_lockout_is_mailed(user, settings):
    settings.INFOBIP_OTP_NOTIFY_AFTER_FAILURES = 0
    settings.INFOBIP_OTP_LOCKOUT_THRESHOLD = 2
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    fail_once(user)
    fail_once(user)
    assert PhoneDevice.objects.get(user=user).is_locked
    assert [m.subject for m in mail.outbox] == ["Your sign-in codes are locked"]
    assert "+44*******456" in mail.outbox[0].body


def test_no_mail_without_an_address(user, settings):
    settings.INFOBIP_OTP_NOTIFY_AFTER_FAILURES = 1
    user.email = ""
    user.save()
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    fail_once(user)
    assert mail.outbox == []


def test_mail_outage_does_not_break_verification(user, settings):
    settings.INFOBIP_OTP_NOTIFY_AFTER_FAILURES = 1
    settings.EMAIL_BACKEND = "tests.test_notifications.BrokenBackend"
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    fail_once(user)
    assert PhoneDevice.objects.get(user=user).failure_count == 1


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise OSError("smtp down")


def test_phone_change_is_mailed_with_masked_numbers(user, client):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    client.get("/otp/verify/")
    client.post("/otp/verify/", {"pin": locmem.last_pin()})
    client.post("/otp/phone/", {"phone_number": "+447400999888"})
    client.post("/otp/phone/", {"pin": locmem.last_pin()})
    assert PhoneDevice.objects.get(user=user).phone_number == "+447400999888"
    assert [m.subject for m in mail.outbox] == [
        "The phone number for your sign-in codes was changed"
    ]
    body = mail.outbox[0].body
    assert "+44*******888 instead of +44*******456" in body
    assert "+447400999888" not in body and PHONE not in body
