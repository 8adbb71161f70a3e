"""InfobipBackend: how Infobip's answers become outcomes, alone and through the services."""

import pytest
import requests
import responses
from responses import matchers

from infobip_otp import services
from infobip_otp.backends import VerifyOutcome
from infobip_otp.backends.infobip import InfobipBackend
from infobip_otp.exceptions import (
    InvalidPin,
    ProviderRateLimited,
    ProviderUnavailable,
)
from infobip_otp.models import OtpChallenge, Purpose, Status
from infobip_otp.testing.pytest_plugin import INFOBIP_BACKEND, reset_client_state

BASE = "https://xyz.api.infobip.test"
PHONE = "+447400123456"
PIN_ID = "9C817C6F8AF3D48F9FE553282AFA2B67"
SEND_URL = f"{BASE}/2fa/2/pin"
VERIFY_URL = f"{BASE}/2fa/2/pin/{PIN_ID}/verify"
SENT = {
    "pinId": PIN_ID,
    "to": "447400123456",
    "ncStatus": "NC_DESTINATION_REACHABLE",
    "smsStatus": "MESSAGE_SENT",
}


@pytest.fixture(autouse=True)
def infobip_settings(settings):
    settings.INFOBIP_OTP_BACKEND = INFOBIP_BACKEND
    settings.INFOBIP_OTP_BASE_URL = BASE
    settings.INFOBIP_OTP_API_KEY = "test-key"
    settings.INFOBIP_OTP_APPLICATION_ID = "APP"
    settings.INFOBIP_OTP_MESSAGE_ID = "MSG"
    settings.INFOBIP_OTP_BREAKER_THRESHOLD = 3
    reset_client_state()
    yield settings
    reset_client_state()


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def challenge(pin_id=PIN_ID):
    return OtpChallenge(phone_number=PHONE, provider_pin_id=pin_id, max_attempts=5)


def verdict(**fields):
    return {"pinId": PIN_ID, "msisdn": "447400123456", **fields}


# --- send ---------------------------------------------------------------------------------


def test_send_uses_settings_and_international_digits(rsps):
    rsps.post(
        SEND_URL,
        json=SENT,
        match=[
            matchers.json_params_matcher(
                {"applicationId": "APP", "messageId": "MSG", "to": "447400123456"}
            )
        ],
    )
    sent = InfobipBackend().send(challenge(pin_id=""))
    assert sent.provider_pin_id == PIN_ID
    assert sent.pin_digest == ""


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"to": "447400123456", "smsStatus": "MESSAGE_SENT"}, "NO_PIN_ID"),
        ({**SENT, "pinId": ""}, "NO_PIN_ID"),
        ({**SENT, "pinId": "X" * 65}, "NO_PIN_ID"),
        (
            {**SENT, "ncStatus": "NC_DESTINATION_NOT_REACHABLE", "smsStatus": "MESSAGE_NOT_SENT"},
            "MESSAGE_NOT_SENT",
        ),
    ],
)
def test_send_that_sent_nothing_is_unavailable(rsps, answer, code):
    rsps.post(SEND_URL, json=answer)
    with pytest.raises(ProviderUnavailable) as caught:
        InfobipBackend().send(challenge(pin_id=""))
    assert caught.value.provider_code == code
    assert len(rsps.calls) == 1


def test_unsent_sms_does_not_open_the_breaker(rsps):
    rsps.post(SEND_URL, json={**SENT, "smsStatus": "MESSAGE_NOT_SENT"})
    for _ in range(5):
        with pytest.raises(ProviderUnavailable) as caught:
            InfobipBackend().send(challenge(pin_id=""))
        assert caught.value.provider_code == "MESSAGE_NOT_SENT"
    assert len(rsps.calls) == 5


# --- verify -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (verdict(verified=True, attemptsRemaining=0), VerifyOutcome.VERIFIED),
        ({"verified": True}, VerifyOutcome.VERIFIED),
        (verdict(verified=False, attemptsRemaining=3, pinError="WRONG_PIN"), VerifyOutcome.WRONG),
        (
            verdict(verified=False, attemptsRemaining=0, pinError="WRONG_PIN"),
            VerifyOutcome.EXHAUSTED,
        ),
        (
            verdict(verified=False, attemptsRemaining=3, pinError="TTL_EXPIRED"),
            VerifyOutcome.EXPIRED,
        ),
        (
            verdict(verified=False, attemptsRemaining=0, pinError="NO_MORE_PIN_ATTEMPTS"),
            VerifyOutcome.EXHAUSTED,
        ),
        (verdict(verified=False, pinError="SOMETHING_NEW"), VerifyOutcome.WRONG),
        (verdict(verified=False), VerifyOutcome.WRONG),
    ],
)
def test_verify_maps_infobip_verdicts(rsps, answer, outcome):
    rsps.post(VERIFY_URL, json=answer, match=[matchers.json_params_matcher({"pin": "123456"})])
    assert InfobipBackend().verify(challenge(), "123456") is outcome


@pytest.mark.parametrize(
    "answer",
    [
        verdict(verified=True, pinError="WRONG_PIN"),
        {**verdict(verified=True), "pinId": "0" * 32},
        {**verdict(verified=False, pinError="WRONG_PIN"), "pinId": "0" * 32},
        verdict(attemptsRemaining=3),
        verdict(verified=None, pinError="WRONG_PIN"),
    ],
    ids=["verified-and-error", "other-pin-id", "other-pin-id-wrong", "no-verdict", "null-verdict"],
)
def test_contradictory_verdicts_fail_closed(rsps, answer, caplog):
    rsps.post(VERIFY_URL, json=answer)
    with pytest.raises(ProviderUnavailable) as caught:
        InfobipBackend().verify(challenge(), "123456")
    assert caught.value.provider_code == "CONTRADICTORY"
    assert "infobip answer refused" in caplog.text


def test_unknown_pin_id_is_expired(rsps):
    rsps.post(
        VERIFY_URL,
        status=404,
        json={
            "requestError": {"serviceException": {"messageId": "NOT_FOUND", "text": "Not found"}}
        },
    )
    assert InfobipBackend().verify(challenge(), "123456") is VerifyOutcome.EXPIRED


@pytest.mark.parametrize(
    "pin", ["12345", "1234567", "12345a", "", "١٢٣٤٥٦", "123456\n", " 123456", "12 456"]
)
def test_pin_that_cannot_be_ours_is_wrong_without_a_call(rsps, pin):
    assert InfobipBackend().verify(challenge(), pin) is VerifyOutcome.WRONG
    assert len(rsps.calls) == 0


def test_challenge_without_pin_id_is_wrong_without_a_call(rsps):
    assert InfobipBackend().verify(challenge(pin_id=""), "123456") is VerifyOutcome.WRONG
    assert len(rsps.calls) == 0


def test_pin_length_follows_the_setting(rsps, settings):
    settings.INFOBIP_OTP_PIN_LENGTH = 8
    rsps.post(VERIFY_URL, json=verdict(verified=True))
    assert InfobipBackend().verify(challenge(), "123456") is VerifyOutcome.WRONG
    assert InfobipBackend().verify(challenge(), "12345678") is VerifyOutcome.VERIFIED
    assert len(rsps.calls) == 1


# --- Through the service layer ------------------------------------------------------------


@pytest.fixture
def started(rsps, user, db):
    rsps.post(SEND_URL, json=SENT)
    started = services.start_challenge(
        user=user, phone_number=PHONE, purpose=Purpose.LOGIN, session_key="s1"
    )
    started.refresh_from_db()
    assert started.provider_pin_id == PIN_ID
    assert started.status == Status.PENDING
    return started


@pytest.mark.django_db
def test_service_verifies_with_the_stored_pin_id(rsps, started):
    rsps.post(
        VERIFY_URL,
        json=verdict(verified=True, attemptsRemaining=0),
        match=[matchers.json_params_matcher({"pin": "123456"})],
    )
    verified = services.verify_challenge(started, "123 456")
    assert verified.status == Status.VERIFIED


@pytest.mark.django_db
@pytest.mark.parametrize(
    "failure",
    [
        {"body": requests.exceptions.ReadTimeout()},
        {"status": 500},
        {"json": verdict(verified=True, pinError="WRONG_PIN")},
        {"body": '{"verified": tr', "content_type": "application/json"},
    ],
    ids=["timeout", "500", "contradictory", "malformed"],
)
def test_provider_failure_on_verify_neither_verifies_nor_counts(rsps, started, failure):
    rsps.post(VERIFY_URL, **failure)
    with pytest.raises(ProviderUnavailable) as caught:
        services.verify_challenge(started, "123456")
    assert caught.value.status_code == 503
    started.refresh_from_db()
    assert started.status == Status.PENDING
    assert started.verified_at is None
    assert started.attempts == 0
    assert len(rsps.calls) == 2  # the send, then exactly one verify


@pytest.mark.django_db
def test_provider_rate_limit_on_verify_does_not_count(rsps, started):
    rsps.post(VERIFY_URL, status=429, headers={"Retry-After": "3"})
    with pytest.raises(ProviderRateLimited) as caught:
        services.verify_challenge(started, "123456")
    assert caught.value.retry_after == 3
    started.refresh_from_db()
    assert started.attempts == 0


@pytest.mark.django_db
def test_wrong_pin_counts_an_attempt(rsps, started):
    rsps.post(VERIFY_URL, json=verdict(verified=False, attemptsRemaining=4, pinError="WRONG_PIN"))
    with pytest.raises(InvalidPin) as caught:
        services.verify_challenge(started, "123456")
    assert caught.value.attempts_left == 4
    started.refresh_from_db()
    assert started.attempts == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "failure",
    [{"status": 500}, {"body": requests.exceptions.ReadTimeout()}, {"json": {"smsStatus": "x"}}],
    ids=["500", "timeout", "no-pin-id"],
)
def test_failed_send_marks_the_challenge_failed(rsps, user, failure):
    rsps.post(SEND_URL, **failure)
    with pytest.raises(ProviderUnavailable):
        services.start_challenge(
            user=user, phone_number=PHONE, purpose=Purpose.LOGIN, session_key="s1"
        )
    stored = OtpChallenge.objects.get()
    assert stored.status == Status.FAILED
    assert stored.provider_pin_id == ""
    assert len(rsps.calls) == 1
