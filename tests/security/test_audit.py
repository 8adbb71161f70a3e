"""H. Notification and audit (T49, T50).

T49: someone with the password keeps entering wrong codes; the account owner
hears about it by e-mail (a channel independent of the phone) with when, from
which address and which browser. T50: every security event leaves one
structured log record with the user, the client address, the masked number and
the purpose, and no record anywhere holds a secret.
"""

import logging
from datetime import datetime, timezone

import pytest
import time_machine
from django.core import mail
from django.test import Client

from infobip_otp.backends import locmem
from infobip_otp.models import PhoneDevice
from infobip_otp.testing.pytest_plugin import infobip_simulator, infobip_simulator_server  # noqa: F401
from tests.security.conftest import MASKED, PASSWORD, PHONE, api_post, wrong

pytestmark = pytest.mark.django_db

ATTACKER_IP = "203.0.113.77"
FORGED_IP = "198.51.100.250"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AttackerBrowser/9.9"
WHEN = datetime(2031, 5, 4, 3, 2, 1, tzinfo=timezone.utc)


def attacker_session(ip=ATTACKER_IP):
    client = Client(REMOTE_ADDR=ip, HTTP_USER_AGENT=BROWSER, HTTP_X_FORWARDED_FOR=FORGED_IP)
    assert api_post(client, "login", {"username": "alice", "password": PASSWORD}).status_code == 200
    assert api_post(client, "send").status_code == 202
    return client, locmem.last_pin(PHONE)


# --- T49 ----------------------------------------------------------------------------------


@pytest.mark.security("T49")
def test_wrong_codes_after_a_correct_password_mail_the_owner_once(phone_user):
    with time_machine.travel(WHEN, tick=False):
        client, pin = attacker_session()
        for _ in range(2):
            assert api_post(client, "verify", {"pin": wrong(pin)}).json()["code"] == "invalid_pin"
        assert mail.outbox == []
        api_post(client, "verify", {"pin": wrong(pin)})  # the third (NOTIFY_AFTER_FAILURES)
        api_post(client, "verify", {"pin": wrong(pin)})  # same streak: no second mail

    [notice] = mail.outbox
    assert notice.to == ["alice@example.com"]
    assert notice.subject == "Wrong sign-in codes were entered for your account"
    body = notice.body
    assert "2031-05-04 03:02:01" in body  # when
    assert ATTACKER_IP in body  # from where: the real address, not the forged header
    assert FORGED_IP not in body
    assert "AttackerBrowser/9.9" in body  # which browser
    assert "3 wrong codes in a row" in body
    assert pin not in body and wrong(pin) not in body
    assert PHONE not in body and PHONE[1:] not in body


@pytest.mark.security("T49")
def test_guessing_spread_over_sessions_and_addresses_still_reaches_the_owner(phone_user, settings):
    settings.INFOBIP_OTP_LOCKOUT_THRESHOLD = 10
    sessions = [attacker_session(ip=f"203.0.113.{i}") for i in (11, 12)]
    codes = []
    for client, pin in sessions:  # 5 wrong codes each: one challenge locks, then the next
        for _ in range(5):
            codes.append(api_post(client, "verify", {"pin": wrong(pin)}).json()["code"])

    assert codes == ["invalid_pin"] * 4 + ["locked"] + ["invalid_pin"] * 4 + ["factor_locked"]
    assert PhoneDevice.objects.get().is_locked
    subjects = [message.subject for message in mail.outbox]
    assert subjects == [
        "Wrong sign-in codes were entered for your account",
        "Your sign-in codes are locked",
    ]
    first, lockout = mail.outbox
    assert "203.0.113.11" in first.body  # the third failure came from the first session
    assert "203.0.113.12" in lockout.body  # the tenth from the second
    assert MASKED in lockout.body and PHONE not in lockout.body


# --- T50 ----------------------------------------------------------------------------------

AUDITED = [
    "otp.sent",
    "otp.resent",
    "otp.failed",
    "otp.verified",
    "otp.locked",
    "otp.send_failed",
    "otp.verify_failed",
]
CLIENT_IP = "203.0.113.50"


def audit_scenario(sim, settings, caplog):
    """Send, resend, a wrong code, a provider error on each call, success, then a lockout."""
    caplog.set_level(logging.DEBUG)
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    settings.INFOBIP_OTP_LOCKOUT_THRESHOLD = 2
    pins = []
    client = Client(REMOTE_ADDR=CLIENT_IP)
    api_post(client, "login", {"username": "alice", "password": PASSWORD})
    assert api_post(client, "send").status_code == 202
    pins.append(sim.last_pin(PHONE))
    sim.advance(60)
    assert api_post(client, "send").status_code == 202  # resend
    pins.append(sim.last_pin(PHONE))
    assert api_post(client, "verify", {"pin": wrong(pins[-1])}).json()["code"] == "invalid_pin"
    sim.advance(3)
    sim.set_fault("verify", "500", times=1)
    assert api_post(client, "verify", {"pin": pins[-1]}).status_code == 503
    assert api_post(client, "verify", {"pin": pins[-1]}).json() == {"state": "verified"}

    failing = Client(REMOTE_ADDR=CLIENT_IP)
    api_post(failing, "login", {"username": "alice", "password": PASSWORD})
    sim.set_fault("send", "503", times=1)
    assert api_post(failing, "send").status_code == 503
    sim.advance(60)
    assert api_post(failing, "send").status_code == 202
    pins.append(sim.last_pin(PHONE))
    for _ in range(2):
        sim.advance(3)
        api_post(failing, "verify", {"pin": wrong(pins[-1])})
    assert PhoneDevice.objects.get().is_locked
    return client, pins


@pytest.fixture
def audit_log(infobip_simulator, phone_user, settings, caplog):  # noqa: F811
    client, pins = audit_scenario(infobip_simulator, settings, caplog)
    return {
        "records": list(caplog.records),
        "pins": pins,
        "client": client,
        "user": phone_user,
        "sim": infobip_simulator,
    }


@pytest.mark.security("T50")
@pytest.mark.parametrize("event", AUDITED)
def test_each_security_event_is_a_structured_audit_record(audit_log, event):
    records = [record for record in audit_log["records"] if getattr(record, "event", None) == event]
    assert records, f"no {event} record"
    for record in records:
        fields = {
            name: getattr(record, name, "<missing>")
            for name in ("user_id", "ip", "phone", "purpose")
        }
        assert fields == {
            "user_id": audit_log["user"].pk,
            "ip": CLIENT_IP,
            "phone": MASKED,
            "purpose": "login",
        }, f"{event}: {fields}"


@pytest.mark.security("T50")
def test_no_log_record_holds_a_secret(audit_log, settings):
    sim = audit_log["sim"]
    secrets = {
        "PIN": set(audit_log["pins"]) | {wrong(pin) for pin in audit_log["pins"]},
        "full number": {PHONE, PHONE[1:], "07400123456"},
        "API key": {settings.INFOBIP_OTP_API_KEY},
        "session key": {audit_log["client"].session.session_key},
    }
    # urllib3's own DEBUG lines carry request paths, and so the pinId of a
    # verification; this app's records must not.
    pin_ids = {request.path.split("/")[4] for request in sim.requests_for("verify")}
    formatter = logging.Formatter()

    def dump(records):
        return "\n".join(
            f"{record.getMessage()} {vars(record)!r} "
            + (formatter.formatException(record.exc_info) if record.exc_info else "")
            for record in records
        )

    everything = dump(audit_log["records"])
    ours = dump(r for r in audit_log["records"] if r.name.startswith("infobip_otp"))
    assert len(audit_log["records"]) > 10 and pin_ids
    for kind, values in secrets.items():
        for value in values:
            assert value and value not in everything, f"a {kind} was logged"
    for pin_id in pin_ids:
        assert pin_id not in ours, "the provider pinId was logged"
