"""Code lifetime, single use and binding (SECURITY T01-T07), attacked over HTTP.

Most tests here run the real Infobip backend against the local simulator with
an application left at Infobip's own, weaker defaults (15-minute PINs, ten
attempts, a PIN that verifies again): whatever is refused then is refused by
this app, not by the provider (SECURITY rule 1).
"""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core import checks as django_checks
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from infobip_otp import checks, services, signals
from infobip_otp.backends import locmem
from infobip_otp.client import InfobipClient
from infobip_otp.conf import app_settings
from infobip_otp.exceptions import InvalidPin
from infobip_otp.models import OtpChallenge, PhoneDevice, Purpose, Status
from infobip_otp.testing.pytest_plugin import (  # noqa: F401
    infobip_simulator,
    infobip_simulator_server,
)
from tests.security.conftest import API, PASSWORD, PHONE, VERIFY_PAGE, api_post

pytestmark = pytest.mark.django_db

LOGIN_PAGE = "/accounts/login/"
ALICE = {"username": "alice", "password": PASSWORD}
BOB_PHONE = "+447400654321"
NEW_PHONE = "+447400999888"
# Infobip's defaults for a new application, except that its rate limits are
# lifted so that every request the app lets through really reaches it.
LIFTED_PROVIDER_LIMITS = {
    "verifyPinLimit": "1000/1s",
    "sendPinPerPhoneNumberLimit": "1000/1d",
}
WRONG_PIN_TEXT = str(InvalidPin.default_detail)


@pytest.fixture
def lax_infobip(infobip_simulator, settings):  # noqa: F811
    """The simulator, with the app pointed at an application on Infobip's defaults."""
    application = infobip_simulator.create_application("infobip-defaults", **LIFTED_PROVIDER_LIMITS)
    assert application["configuration"]["allowMultiplePinVerifications"] is True
    assert application["configuration"]["pinTimeToLive"] == "15m"
    template = infobip_simulator.create_template(
        application["applicationId"], pin_length=app_settings.PIN_LENGTH
    )
    settings.INFOBIP_OTP_APPLICATION_ID = application["applicationId"]
    settings.INFOBIP_OTP_MESSAGE_ID = template["messageId"]
    return infobip_simulator


def pending_api_client(credentials=ALICE, **defaults):
    """A fresh API client past the password step, its first code sent."""
    client = Client(**defaults)
    assert api_post(client, "login", credentials).json()["state"] == "pending"
    sent = api_post(client, "send")
    assert sent.status_code == 202, sent.content
    return client


def login_challenge_of(client):
    return OtpChallenge.objects.get(public_id=client.session["_infobip_otp"]["challenge"])


def api_state(client):
    return client.get(API["status"]).json()["state"]


# --- T01 ----------------------------------------------------------------------


@pytest.mark.security("T01")
def test_right_code_one_second_past_our_ttl_is_refused_before_infobip_is_asked(
    lax_infobip, phone_user
):
    client = pending_api_client()
    challenge = login_challenge_of(client)
    assert challenge.expires_at - challenge.created_at <= timedelta(minutes=10)
    pin = lax_infobip.last_pin(PHONE)

    with time_machine.travel(challenge.expires_at + timedelta(seconds=1), tick=False):
        response = api_post(client, "verify", {"pin": pin})
        assert api_state(client) == "pending"
        # Infobip's PIN lives 15 minutes: it would still have said yes.
        answer = InfobipClient().verify_pin(challenge.provider_pin_id, pin)

    assert response.status_code == 400
    assert response.json()["code"] == "expired"
    assert lax_infobip.request_count("verify") == 1  # only the direct call just above
    assert answer.verified is True
    challenge.refresh_from_db()
    assert challenge.status == Status.EXPIRED


@pytest.mark.security("T01")
def test_right_code_one_second_before_our_ttl_still_verifies(lax_infobip, phone_user):
    client = pending_api_client()
    challenge = login_challenge_of(client)

    with time_machine.travel(challenge.expires_at - timedelta(seconds=1), tick=False):
        response = api_post(client, "verify", {"pin": lax_infobip.last_pin(PHONE)})

    assert response.json() == {"state": "verified"}
    assert lax_infobip.request_count("verify") == 1


# --- T02 ----------------------------------------------------------------------


@pytest.mark.security("T02")
def test_code_replayed_after_success_neither_elevates_again_nor_reaches_infobip(
    lax_infobip, phone_user, caplog
):
    caplog.set_level("INFO", logger="infobip_otp")
    elevations = []

    def on_verified(**kwargs):
        elevations.append(kwargs["challenge"].public_id)

    signals.otp_verified.connect(on_verified)
    try:
        client = Client()
        client.post(LOGIN_PAGE, ALICE)
        client.get(VERIFY_PAGE)
        pin = lax_infobip.last_pin(PHONE)
        assert client.post(VERIFY_PAGE, {"pin": pin})["Location"] == "/"
        session_key = client.session.session_key

        replayed_page = client.post(VERIFY_PAGE, {"pin": pin, "next": "/admin/"})
        replayed_api = api_post(client, "verify", {"pin": pin})
    finally:
        signals.otp_verified.disconnect(on_verified)

    assert replayed_page.status_code == 302
    assert replayed_api.status_code == 400
    assert replayed_api.json()["code"] == "no_challenge"
    assert client.session.session_key == session_key
    assert len(elevations) == 1
    assert [r.event for r in caplog.records if getattr(r, "event", "") == "otp.verified"] == [
        "otp.verified"
    ]
    assert lax_infobip.request_count("verify") == 1
    challenge = OtpChallenge.objects.get()
    assert (challenge.status, challenge.attempts) == (Status.VERIFIED, 1)
    # Infobip's default would have verified the same PIN a second time.
    assert InfobipClient().verify_pin(challenge.provider_pin_id, pin).verified is True


# --- T03 ----------------------------------------------------------------------


@pytest.mark.security("T03")
def test_code_of_one_pending_session_fails_and_counts_in_another(phone_user):
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE)
    browser.get(VERIFY_PAGE)
    browser_pin = locmem.last_pin()
    attacker = pending_api_client(REMOTE_ADDR="203.0.113.66")
    if locmem.last_pin() == browser_pin:
        pytest.fail("two random PINs collided; rerun")

    stolen = api_post(attacker, "verify", {"pin": browser_pin})

    assert stolen.status_code == 400
    assert stolen.json() == {
        "detail": WRONG_PIN_TEXT,
        "code": "invalid_pin",
        "attempts_left": 4,
    }
    assert api_state(attacker) == "pending"
    assert login_challenge_of(attacker).attempts == 1
    assert PhoneDevice.objects.get(user=phone_user).failure_count == 1
    victims = login_challenge_of(browser)
    assert (victims.status, victims.attempts) == (Status.PENDING, 0)
    assert browser.post(VERIFY_PAGE, {"pin": browser_pin}).status_code == 302
    assert api_state(browser) == "verified"


# --- T04 ----------------------------------------------------------------------


@pytest.mark.security("T04")
def test_old_code_after_a_resend_is_refused_though_infobip_still_holds_it(
    lax_infobip, phone_user, settings
):
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    client = Client()
    client.post(LOGIN_PAGE, ALICE)
    client.get(VERIFY_PAGE)
    old_pin = lax_infobip.last_pin(PHONE)
    old_pin_id = OtpChallenge.objects.get().provider_pin_id
    client.post(VERIFY_PAGE, {"action": "resend"})
    new_pin = lax_infobip.last_pin(PHONE)
    if new_pin == old_pin:
        pytest.fail("two random PINs collided; rerun")

    refused = client.post(VERIFY_PAGE, {"pin": old_pin})

    assert WRONG_PIN_TEXT in refused.content.decode()
    assert api_state(client) == "pending"
    active = OtpChallenge.objects.active().filter(user=phone_user, purpose=Purpose.LOGIN)
    assert active.count() == 1
    current_pin_id = active.get().provider_pin_id
    assert current_pin_id != old_pin_id
    [verify_call] = lax_infobip.requests_for("verify")
    assert current_pin_id in verify_call.path
    assert old_pin_id not in verify_call.path
    assert InfobipClient().verify_pin(old_pin_id, old_pin).verified is True
    assert client.post(VERIFY_PAGE, {"pin": new_pin}).status_code == 302
    assert api_state(client) == "verified"


# --- T05 ----------------------------------------------------------------------

FOREIGN_ID_FIELDS = ("pinId", "pin_id", "challenge", "challenge_id", "public_id", "id")


@pytest.fixture
def bob(other_user):
    PhoneDevice.objects.create(user=other_user, phone_number=BOB_PHONE)
    return other_user


def pointing_at(challenge, pin):
    """A verify body naming ``challenge`` by every id a server might read."""
    return {
        "pin": pin,
        **dict.fromkeys(FOREIGN_ID_FIELDS[:2], challenge.provider_pin_id),
        **dict.fromkeys(FOREIGN_ID_FIELDS[2:], str(challenge.public_id)),
    }


@pytest.mark.security("T05")
def test_challenge_ids_in_the_request_are_ignored(lax_infobip, phone_user, bob):
    alice = pending_api_client()
    alices = login_challenge_of(alice)
    alices_pin = lax_infobip.last_pin(PHONE)
    mallory = pending_api_client({"username": "bob", "password": "pw-bob-123"})
    mallorys = login_challenge_of(mallory)
    mallorys_pin = lax_infobip.last_pin(BOB_PHONE)

    over_api = api_post(mallory, "verify", pointing_at(alices, alices_pin))
    over_form = mallory.post(VERIFY_PAGE, pointing_at(alices, alices_pin))

    assert over_api.status_code == 400
    assert over_api.json()["code"] == "invalid_pin"
    assert WRONG_PIN_TEXT in over_form.content.decode()
    assert "+44*******456" not in over_form.content.decode()  # Alice's number, even masked
    alices.refresh_from_db()
    assert (alices.status, alices.attempts) == (Status.PENDING, 0)
    assert [call.path for call in lax_infobip.requests_for("verify")] == [
        f"/2fa/2/pin/{mallorys.provider_pin_id}/verify"
    ] * 2

    # With its own right code, the foreign ids still change nothing for Alice.
    own = api_post(mallory, "verify", pointing_at(alices, mallorys_pin))
    assert own.json() == {"state": "verified"}
    alices.refresh_from_db()
    assert (alices.status, alices.attempts) == (Status.PENDING, 0)
    assert api_state(alice) == "pending"


# --- T06 ----------------------------------------------------------------------


def challenge_for(client, user, purpose):
    """A challenge of another flow (say a project's step-up page) bound to ``client``'s session."""
    return services.start_challenge(
        phone_number=PHONE, purpose=purpose, user=user, session_key=client.session.session_key
    )


@pytest.mark.security("T06")
def test_phone_change_code_cannot_complete_a_login(phone_user):
    attacker = pending_api_client()
    login_challenge = login_challenge_of(attacker)
    for name in ("phone", "send"):
        assert api_post(attacker, name, {"phone_number": NEW_PHONE}).status_code == 401
    assert [message.to for message in locmem.outbox] == [PHONE]

    step_up = challenge_for(attacker, phone_user, Purpose.VERIFY_PHONE)
    step_up_pin = locmem.last_pin()
    over_api = api_post(attacker, "verify", {"pin": step_up_pin})
    over_form = attacker.post(VERIFY_PAGE, {"pin": step_up_pin})

    assert over_api.json()["code"] == "invalid_pin"
    assert WRONG_PIN_TEXT in over_form.content.decode()
    assert api_state(attacker) == "pending"
    login_challenge.refresh_from_db()
    assert login_challenge.attempts == 2
    step_up.refresh_from_db()
    assert (step_up.status, step_up.attempts) == (Status.PENDING, 0)


@pytest.mark.security("T06")
def test_login_code_cannot_confirm_a_phone_change(phone_user):
    client = pending_api_client()
    api_post(client, "verify", {"pin": locmem.last_pin()})
    assert api_post(client, "phone", {"phone_number": NEW_PHONE}).status_code == 202
    new_number_pin = locmem.last_pin()
    stray_login = challenge_for(client, phone_user, Purpose.LOGIN)
    login_pin = locmem.last_pin()
    if login_pin == new_number_pin:
        pytest.fail("two random PINs collided; rerun")

    refused = api_post(client, "verify", {"pin": login_pin})

    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_pin"
    assert PhoneDevice.objects.get(user=phone_user).phone_number == PHONE
    stray_login.refresh_from_db()
    assert (stray_login.status, stray_login.attempts) == (Status.PENDING, 0)
    confirmed = api_post(client, "verify", {"pin": new_number_pin})
    assert confirmed.json() == {"state": "verified", "phone": "+44*******888"}


# --- T07: our own settings, checked at start-up ----------------------------------


def code_policy_errors():
    return [error for error in django_checks.run_checks() if error.id in (checks.E008, checks.E009)]


@pytest.mark.security("T07")
@pytest.mark.parametrize(
    ("name", "value", "error_id"),
    [
        ("PIN_TTL", 601, "infobip_otp.E008"),
        ("PIN_TTL", 900, "infobip_otp.E008"),
        ("PIN_TTL", 0, "infobip_otp.E008"),
        ("PIN_TTL", "300", "infobip_otp.E008"),
        ("PIN_LENGTH", 5, "infobip_otp.E009"),
        ("PIN_LENGTH", 4, "infobip_otp.E009"),
        ("PIN_LENGTH", "6", "infobip_otp.E009"),
    ],
)
def test_weak_code_settings_stop_the_project_from_starting(settings, name, value, error_id):
    setattr(settings, f"INFOBIP_OTP_{name}", value)

    with pytest.raises(SystemCheckError, match=error_id):
        call_command("check")

    expected = {
        "infobip_otp.E008": django_checks.Error(
            checks.E008_MSG.format(maximum=600, value=value),
            hint=checks.E008_HINT,
            id=checks.E008,
        ),
        "infobip_otp.E009": django_checks.Error(
            checks.E009_MSG.format(minimum=6, value=value),
            hint=checks.E009_HINT,
            id=checks.E009,
        ),
    }
    assert code_policy_errors() == [expected[error_id]]


@pytest.mark.security("T07")
def test_code_settings_at_the_limits_pass_the_checks(settings):
    settings.INFOBIP_OTP_PIN_TTL = 600
    settings.INFOBIP_OTP_PIN_LENGTH = 6
    assert code_policy_errors() == []


# --- T07: the provider's configuration, checked against the live account ---------

SAFE_APPLICATION = {
    "pinAttempts": 5,
    "pinTimeToLive": "5m",
    "allowMultiplePinVerifications": False,
    "verifyPinLimit": "1/3s",
}
SAFE_TEMPLATE = {"pin_type": "NUMERIC", "pin_length": 6}


def point_at(server, settings, application=None, template=None):
    created = server.create_application(
        app_settings.APPLICATION_NAME, **{**SAFE_APPLICATION, **(application or {})}
    )
    message = server.create_template(
        created["applicationId"], **{**SAFE_TEMPLATE, **(template or {})}
    )
    settings.INFOBIP_OTP_APPLICATION_ID = created["applicationId"]
    settings.INFOBIP_OTP_MESSAGE_ID = message["messageId"]


def run_setup_check():
    out = StringIO()
    call_command("infobip_otp_setup", "--check", stdout=out)
    return out.getvalue()


@pytest.mark.security("T07")
@pytest.mark.parametrize(
    ("application", "template", "problem"),
    [
        ({"allowMultiplePinVerifications": True}, None, "allowMultiplePinVerifications"),
        ({"pinTimeToLive": "15m"}, None, "pinTimeToLive"),
        ({"pinTimeToLive": "601s"}, None, "pinTimeToLive"),
        (None, {"pin_length": 4}, "pinLength"),
        (None, {"pin_type": "ALPHANUMERIC"}, "pinType"),
        (None, {"pin_type": "HEX"}, "pinType"),
    ],
)
def test_setup_check_refuses_a_weak_infobip_configuration_and_changes_nothing(
    infobip_simulator_server,  # noqa: F811
    settings,
    application,
    template,
    problem,
):
    point_at(infobip_simulator_server, settings, application, template)

    with pytest.raises(CommandError, match=problem) as refused:
        run_setup_check()

    assert "unsafe" in str(refused.value)
    assert {call.method for call in infobip_simulator_server.requests_for()} == {"GET"}


@pytest.mark.security("T07")
def test_setup_check_refuses_every_weakness_of_infobip_defaults_at_once(
    infobip_simulator_server,  # noqa: F811
    settings,
):
    created = infobip_simulator_server.create_application(app_settings.APPLICATION_NAME)
    message = infobip_simulator_server.create_template(
        created["applicationId"], pin_type="ALPHA", pin_length=4
    )
    settings.INFOBIP_OTP_APPLICATION_ID = created["applicationId"]
    settings.INFOBIP_OTP_MESSAGE_ID = message["messageId"]

    with pytest.raises(CommandError) as refused:
        run_setup_check()

    for problem in ("allowMultiplePinVerifications", "pinTimeToLive", "pinType", "pinLength"):
        assert problem in str(refused.value)


@pytest.mark.security("T07")
def test_setup_check_passes_the_configuration_setup_writes(infobip_simulator):  # noqa: F811
    assert "safe" in run_setup_check()
    assert {call.method for call in infobip_simulator.requests_for()} == {"GET"}


@pytest.mark.security("T07")
def test_setup_check_without_an_application_fails(infobip_simulator_server):  # noqa: F811
    with pytest.raises(CommandError, match="infobip_otp_setup"):
        run_setup_check()
