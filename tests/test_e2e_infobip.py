"""End to end: services -> InfobipBackend -> client -> real sockets -> the simulator."""

import logging
import socket
import time

import pytest
import requests
import time_machine

from infobip_otp import services
from infobip_otp.conf import app_settings
from infobip_otp.exceptions import (
    ChallengeExpired,
    ChallengeLocked,
    InvalidPin,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from infobip_otp.models import OtpChallenge, Purpose, Status
from infobip_otp.testing.pytest_plugin import (  # noqa: F401
    TEST_TIMEOUT,
    infobip_simulator,
    infobip_simulator_server,
)

pytestmark = pytest.mark.django_db

PHONE = "+447400123456"
DIGITS = "447400123456"
# A hung call must give up within the read timeout, plus slack for a loaded machine.
BOUND = TEST_TIMEOUT[1] + 1.0


@pytest.fixture
def sim(infobip_simulator):  # noqa: F811
    return infobip_simulator


def start(user, session_key="s1"):
    return services.start_challenge(
        user=user, phone_number=PHONE, purpose=Purpose.LOGIN, session_key=session_key
    )


def other_pin(pin):
    return "".join(str((int(digit) + 1) % 10) for digit in pin)


def timed(call, *args):
    began = time.monotonic()
    try:
        return call(*args), time.monotonic() - began
    except ProviderError as exc:
        exc.elapsed = time.monotonic() - began
        raise


def use_application(sim, settings, **configuration):
    """Point the settings at a new simulator application with this configuration."""
    application = sim.create_application("custom", **configuration)
    template = sim.create_template(application["applicationId"], pin_length=6)
    settings.INFOBIP_OTP_APPLICATION_ID = application["applicationId"]
    settings.INFOBIP_OTP_MESSAGE_ID = template["messageId"]


# --- The happy paths and Infobip's verdicts -----------------------------------------------


def test_send_then_right_pin_verifies(sim, user):
    challenge = start(user)
    assert challenge.status == Status.PENDING
    [sent] = sim.requests_for("send")
    assert sent.body["to"] == DIGITS
    assert sent.query == {"ncNeeded": "true"}
    assert sent.headers["Authorization"] == f"App {sim.api_key}"
    pin = sim.last_pin(PHONE)
    assert services.verify_challenge(challenge, pin).status == Status.VERIFIED
    assert sim.request_count("send") == 1
    assert sim.request_count("verify") == 1


def test_wrong_pin_counts_then_right_pin_verifies(sim, user):
    challenge = start(user)
    pin = sim.last_pin(PHONE)
    with pytest.raises(InvalidPin) as caught:
        services.verify_challenge(challenge, other_pin(pin))
    assert caught.value.attempts_left == 4
    sim.advance(3)  # Infobip's default verifyPinLimit is 1/3s per number
    assert services.verify_challenge(challenge, pin).status == Status.VERIFIED
    assert sim.request_count("verify") == 2


def test_resend_is_a_new_send_and_the_old_code_stops_working(sim, user):
    challenge = start(user)
    old_pin_id = OtpChallenge.objects.get().provider_pin_id
    old_pin = sim.last_pin(PHONE)
    with time_machine.travel(time.time() + app_settings.RESEND_COOLDOWN + 1):
        services.resend_challenge(challenge)
        new_pin = sim.last_pin(PHONE)
        assert challenge.provider_pin_id != old_pin_id
        assert sim.request_count("send") == 2
        assert sim.request_count("resend") == 0
        with pytest.raises(InvalidPin):
            services.verify_challenge(challenge, old_pin if old_pin != new_pin else "000000")
        sim.advance(3)
        assert services.verify_challenge(challenge, new_pin).status == Status.VERIFIED


def test_pin_expired_at_infobip_is_expired(sim, user):
    challenge = start(user)
    sim.advance(app_settings.PIN_TTL + 1)
    with pytest.raises(ChallengeExpired):
        services.verify_challenge(challenge, sim.last_pin(PHONE))
    challenge.refresh_from_db()
    assert challenge.status == Status.EXPIRED
    assert sim.request_count("verify") == 1


def test_pin_expired_on_our_clock_never_reaches_infobip(sim, user):
    challenge = start(user)
    pin = sim.last_pin(PHONE)
    with time_machine.travel(time.time() + 301), pytest.raises(ChallengeExpired):
        services.verify_challenge(challenge, pin)
    assert sim.request_count("verify") == 0


def test_attempts_exhausted_locks_without_asking_again(sim, user):
    challenge = start(user)
    pin = sim.last_pin(PHONE)
    for _ in range(4):
        with pytest.raises(InvalidPin):
            services.verify_challenge(challenge, other_pin(pin))
        sim.advance(3)
    with pytest.raises(ChallengeLocked):
        services.verify_challenge(challenge, other_pin(pin))
    with pytest.raises(ChallengeLocked):
        services.verify_challenge(challenge, pin)
    assert sim.request_count("verify") == 5
    challenge.refresh_from_db()
    assert challenge.status == Status.LOCKED


def test_infobip_out_of_attempts_locks_the_challenge(sim, user, settings):
    use_application(sim, settings, pinAttempts=2, allowMultiplePinVerifications=False)
    challenge = start(user)
    pin = sim.last_pin(PHONE)
    with pytest.raises(InvalidPin):
        services.verify_challenge(challenge, other_pin(pin))
    sim.advance(3)
    with pytest.raises(ChallengeLocked):  # WRONG_PIN with attemptsRemaining 0
        services.verify_challenge(challenge, other_pin(pin))
    assert sim.request_count("verify") == 2


def test_pin_id_unknown_to_infobip_is_expired(sim, user):
    challenge = start(user)
    OtpChallenge.objects.update(provider_pin_id="0" * 32)
    challenge.refresh_from_db()
    with pytest.raises(ChallengeExpired):
        services.verify_challenge(challenge, sim.last_pin(PHONE))
    assert sim.request_count("verify") == 1


def test_wrong_api_key_is_a_generic_503(sim, user, settings):
    settings.INFOBIP_OTP_API_KEY = "not-the-key"
    with pytest.raises(ProviderAuthError) as caught:
        start(user)
    assert caught.value.status_code == 503
    assert caught.value.as_dict() == {
        "detail": str(ProviderError.default_detail),
        "code": "provider_unavailable",
    }
    assert caught.value.provider_text == "Invalid login details"
    assert OtpChallenge.objects.get().status == Status.FAILED
    assert sim.request_count("send") == 1


def test_per_number_limit_is_a_429(sim, user, settings):
    use_application(sim, settings, sendPinPerPhoneNumberLimit="1/1h")
    start(user)
    with pytest.raises(ProviderRateLimited) as caught:
        start(user, session_key="s2")
    assert caught.value.status_code == 429
    assert 3500 < caught.value.retry_after <= 3600
    assert sim.request_count("send") == 2


# --- Injected faults ----------------------------------------------------------------------


def test_latency_within_the_timeout_succeeds(sim, user):
    sim.set_fault("send", "latency", ms=300)
    challenge, elapsed = timed(start, user)
    assert challenge.status == Status.PENDING
    assert 0.3 <= elapsed < BOUND
    assert sim.request_count("send") == 1


@pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("hang", {"seconds": 5}, ProviderUnavailable),
        ("500", {}, ProviderUnavailable),
        ("503", {}, ProviderUnavailable),
        ("429", {"retry_after": 7}, ProviderRateLimited),
        ("malformed", {}, ProviderUnavailable),
        ("contradictory", {}, ProviderUnavailable),
        ("reset", {}, ProviderUnavailable),
    ],
)
def test_send_fault_fails_once_fast_and_marks_the_challenge_failed(sim, user, kind, params, error):
    sim.set_fault("send", kind, **params)
    with pytest.raises(error) as caught:
        timed(start, user)
    assert caught.value.elapsed < BOUND
    assert sim.request_count("send") == 1  # never retried
    assert OtpChallenge.objects.get().status == Status.FAILED
    if kind == "429":
        assert caught.value.retry_after == 7


@pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("hang", {"seconds": 5}, ProviderUnavailable),
        ("500", {}, ProviderUnavailable),
        ("503", {}, ProviderUnavailable),
        ("429", {"retry_after": 7}, ProviderRateLimited),
        ("malformed", {}, ProviderUnavailable),
        ("contradictory", {}, ProviderUnavailable),
        ("reset", {}, ProviderUnavailable),
    ],
)
def test_verify_fault_never_verifies_nor_costs_an_attempt(sim, user, kind, params, error):
    challenge = start(user)
    pin = sim.last_pin(PHONE)
    sim.set_fault("verify", kind, times=1, **params)
    with pytest.raises(error) as caught:
        timed(services.verify_challenge, challenge, pin)
    assert caught.value.elapsed < BOUND
    assert sim.request_count("verify") == 1
    challenge.refresh_from_db()
    assert challenge.status == Status.PENDING
    assert challenge.attempts == 0
    assert challenge.verified_at is None
    # The provider recovers: the user's next try is allowed and works.
    assert services.verify_challenge(challenge, pin).status == Status.VERIFIED
    assert sim.request_count("verify") == 2


def test_refused_connection_is_tried_twice_then_fails(sim, user, settings, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.INFOBIP_OTP_BASE_URL = f"http://127.0.0.1:{port}"
    attempts = []
    real_send = requests.adapters.HTTPAdapter.send

    def counting_send(self, request, **kwargs):
        attempts.append(request.url)
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", counting_send)
    with pytest.raises(ProviderUnavailable) as caught:
        timed(start, user)
    assert caught.value.elapsed < BOUND
    assert len(attempts) == 2
    assert OtpChallenge.objects.get().status == Status.FAILED


def test_breaker_opens_after_repeated_failures_and_recovers(sim, user, settings):
    threshold = settings.INFOBIP_OTP_BREAKER_THRESHOLD = 3
    sim.set_fault("*", "500")
    for number in range(threshold):
        with pytest.raises(ProviderUnavailable):
            start(user, session_key=f"s{number}")
    with pytest.raises(ProviderUnavailable) as caught:
        start(user, session_key="fast")
    assert caught.value.provider_code == "CIRCUIT_OPEN"
    assert sim.request_count("send") == threshold
    sim.clear_faults()
    with time_machine.travel(time.time() + 31):
        challenge = start(user, session_key="probe")
    assert challenge.status == Status.PENDING
    assert sim.request_count("send") == threshold + 1


def test_logs_hold_no_key_number_or_pin(sim, user, settings, caplog):
    caplog.set_level(logging.DEBUG)
    challenge = start(user)
    pin = sim.last_pin(PHONE)
    with pytest.raises(InvalidPin):
        services.verify_challenge(challenge, other_pin(pin))
    sim.set_fault("verify", "500", times=1)
    with pytest.raises(ProviderUnavailable):
        services.verify_challenge(challenge, pin)
    settings.INFOBIP_OTP_API_KEY = f"{sim.api_key}-rotated"
    with pytest.raises(ProviderAuthError):
        start(user, session_key="s2")
    assert any(record.name == "infobip_otp.client" for record in caplog.records)
    dumped = "\n".join(str(vars(record)) for record in caplog.records)
    for secret in (sim.api_key, DIGITS, pin, other_pin(pin)):
        assert secret not in dumped
