"""F. SMS pumping and cost (T34-T40): refused before Infobip is ever called.

The provider is the local Infobip simulator behind the real ``InfobipBackend``,
so ``sim.request_count("send")`` is the number of SMS that would have been
paid for. Attackers rotate accounts, sessions and IP addresses as real SMS
pumpers do.
"""

import logging
import time

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse

from infobip_otp import signals
from infobip_otp.conf import app_settings
from infobip_otp.models import OtpChallenge, PhoneDevice, Purpose, Status
from infobip_otp.testing.pytest_plugin import infobip_simulator, infobip_simulator_server  # noqa: F401
from infobip_otp.trusted_devices import COOKIE_NAME
from tests.security.conftest import API, PASSWORD, PHONE, VERIFY_PAGE, api_post, wrong

pytestmark = pytest.mark.django_db

PHONE_PAGE = reverse("infobip_otp:phone")
VICTIM = "+447400123456"


@pytest.fixture
def sim(infobip_simulator):  # noqa: F811
    return infobip_simulator


def account(django_user_model, username, phone=None):
    user = django_user_model.objects.create_user(username, f"{username}@example.com", PASSWORD)
    if phone:
        PhoneDevice.objects.create(user=user, phone_number=phone)
    return user


def signed_in(username, ip="127.0.0.1"):
    client = Client(REMOTE_ADDR=ip)
    answer = api_post(client, "login", {"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.content
    return client


def verified_session(sim, username, phone):
    client = signed_in(username)
    assert api_post(client, "send").status_code == 202
    assert api_post(client, "verify", {"pin": sim.last_pin(phone)}).json() == {"state": "verified"}
    return client


def assert_refused_number(answer, code):
    assert answer.status_code == 400, answer.content
    assert answer.json()["code"] == code
    assert list(answer.json()["fields"]) == ["phone_number"]


def assert_rate_limited(answer):
    assert answer.status_code == 429, answer.content
    assert answer.json()["code"] == "rate_limited"
    assert int(answer["Retry-After"]) >= 1


def phone_on_file(user):
    """``INFOBIP_OTP_PHONE_GETTER`` for T34: the number the project keeps for a user."""
    return {"premium": "+449012345678", "abroad": "+385917284759"}.get(user.username)


# --- T34: countries and premium ranges ----------------------------------------------------


@pytest.mark.security("T34")
@pytest.mark.parametrize(
    "number",
    ["+385917284759", "+4915123456789", "+12015550123", "+2348031234567", "+8613812345678"],
)
def test_numbers_outside_the_allowed_countries_cost_nothing(
    sim, django_user_model, settings, number
):
    settings.INFOBIP_OTP_ALLOWED_REGIONS = ["GB"]
    settings.INFOBIP_OTP_ANONYMOUS_PHONE_VERIFICATION = True
    account(django_user_model, "mallory")
    member = signed_in("mallory")

    assert_refused_number(api_post(member, "phone", {"phone_number": number}), "region_not_allowed")
    assert_refused_number(api_post(member, "send", {"phone_number": number}), "region_not_allowed")
    assert_refused_number(
        api_post(Client(), "phone", {"phone_number": number}), "region_not_allowed"
    )
    page = member.post(PHONE_PAGE, {"phone_number": number})
    assert page.status_code == 200 and page.context["phone_form"].errors["phone_number"]

    assert sim.request_count("send") == 0
    assert OtpChallenge.objects.count() == 0


@pytest.mark.security("T34")
@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("+449012345678", "GB premium rate"),
        ("+19002345678", "US premium rate"),
        ("+4918012345", "DE shared cost"),
        ("+448001234567", "GB toll free"),
        ("+18002345678", "US toll free"),
        ("+447012345678", "GB personal number"),
        ("+445512345678", "GB UAN"),
        ("+447640123456", "GB pager"),
    ],
)
def test_premium_shared_cost_and_other_paid_ranges_cost_nothing(
    sim, django_user_model, number, kind
):
    account(django_user_model, "mallory")
    member = signed_in("mallory")

    answer = api_post(member, "phone", {"phone_number": number})

    assert_refused_number(answer, "number_type_not_allowed")
    assert sim.request_count("send") == 0, kind
    assert OtpChallenge.objects.count() == 0


@pytest.mark.security("T34")
@pytest.mark.parametrize(
    ("username", "code"), [("premium", "number_type_not_allowed"), ("abroad", "region_not_allowed")]
)
def test_a_number_on_file_that_policy_now_refuses_gets_no_code(
    sim, django_user_model, settings, username, code
):
    """A number stored before the policy tightened (or by the project) is checked again."""
    settings.INFOBIP_OTP_PHONE_GETTER = f"{__name__}.phone_on_file"
    settings.INFOBIP_OTP_ALLOWED_REGIONS = ["GB"]
    account(django_user_model, username)
    client = signed_in(username)
    browser = Client()
    browser.post("/accounts/login/", {"username": username, "password": PASSWORD})

    answer = api_post(client, "send")
    page = browser.get(VERIFY_PAGE)

    assert answer.status_code == 400 and answer.json()["code"] == code
    assert page.status_code == 200
    assert sim.request_count("send") == 0
    assert client.get(API["status"]).json()["state"] == "pending"


# --- T35: landlines and VoIP ---------------------------------------------------------------


@pytest.mark.security("T35")
@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("+441212345678", "GB landline"),
        ("+445612345678", "GB VoIP"),
        ("+4930123456", "DE landline"),
    ],
)
def test_landline_and_voip_numbers_are_refused_by_number_type(sim, django_user_model, number, kind):
    account(django_user_model, "mallory")
    member = signed_in("mallory")

    assert_refused_number(
        api_post(member, "phone", {"phone_number": number}), "number_type_not_allowed"
    )
    page = member.post(PHONE_PAGE, {"phone_number": number})
    assert page.context["phone_form"].errors["phone_number"]
    assert sim.request_count("send") == 0, kind


@pytest.mark.security("T35")
def test_north_american_numbers_typed_fixed_line_or_mobile_are_accepted(sim, django_user_model):
    """The type check must not refuse all of the US and Canada (FIXED_LINE_OR_MOBILE)."""
    account(django_user_model, "carol")
    member = signed_in("carol")

    answer = api_post(member, "phone", {"phone_number": "+12015550123"})

    assert answer.status_code == 202
    assert sim.request_count("send") == 1


# --- T36: one number, many accounts and addresses ------------------------------------------


@pytest.mark.security("T36")
def test_one_number_pumped_from_many_accounts_and_addresses_gets_five_sms(
    sim, django_user_model, settings
):
    settings.INFOBIP_OTP_ANONYMOUS_PHONE_VERIFICATION = True
    attackers = []
    for i in range(4):  # signed-up accounts, each enrolling the victim's number
        account(django_user_model, f"pumper{i}")
        attackers.append(signed_in(f"pumper{i}", ip=f"198.51.100.{i + 1}"))
    attackers += [Client(REMOTE_ADDR=f"203.0.113.{i + 1}") for i in range(6)]  # sign-up forms

    answers = [
        api_post(client, "phone", {"phone_number": VICTIM}, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
        for i, client in enumerate(attackers)
    ]

    statuses = [answer.status_code for answer in answers]
    assert statuses == [202] * 5 + [429] * 5  # the default send_phone limit: 5 an hour
    for answer in answers[5:]:
        assert_rate_limited(answer)
    # Our limit stopped them: the provider's own per-number limit was never reached.
    assert sim.request_count("send") == 5
    assert all(request.fault is None for request in sim.requests_for("send"))


# --- T37: a burst to sequential numbers of one range ---------------------------------------


@pytest.mark.security("T37")
def test_a_burst_to_sequential_numbers_trips_the_prefix_limit_and_alerts(sim, settings, caplog):
    settings.INFOBIP_OTP_ANONYMOUS_PHONE_VERIFICATION = True
    caplog.set_level(logging.WARNING, logger="infobip_otp")
    numbers = [f"+4474001230{i:02d}" for i in range(32)]

    answers = [
        api_post(Client(REMOTE_ADDR=f"203.0.113.{i + 1}"), "phone", {"phone_number": number})
        for i, number in enumerate(numbers)
    ]

    assert [answer.status_code for answer in answers] == [202] * 30 + [429] * 2
    assert_rate_limited(answers[-1])
    assert sim.request_count("send") == 30
    alerts = [
        record for record in caplog.records if getattr(record, "event", None) == "otp.prefix_burst"
    ]
    assert len(alerts) == 2
    assert {record.prefix for record in alerts} == {"+4474001"}
    assert all(number not in record.getMessage() for record in alerts for number in numbers)
    # Only that range is held back; another one still gets its code.
    other = api_post(
        Client(REMOTE_ADDR="203.0.113.200"), "phone", {"phone_number": "+447911123456"}
    )
    assert other.status_code == 202
    assert sim.request_count("send") == 31


# --- T38: resend spam and reloads -----------------------------------------------------------


@pytest.mark.security("T38")
def test_resend_spam_meets_a_growing_cooldown_then_a_cap(sim, phone_user, settings):
    # Every click counts against the send limits too (send_phone would stop this
    # spam after 5); loosened here so the cooldown alone is what answers.
    settings.INFOBIP_OTP_RATES = {
        "send_phone": "100/h",
        "send_session": "100/h",
        "send_user": "100/h",
    }
    client = signed_in("alice")
    assert api_post(client, "send").status_code == 202
    clock, waits = time.time(), []
    for _ in range(2):
        with time_machine.travel(clock):
            spam = [api_post(client, "send") for _ in range(5)]
        for answer in spam:
            assert_rate_limited(answer)
        waits.append(int(spam[0]["Retry-After"]))
        clock += waits[-1] + 1
        with time_machine.travel(clock):
            assert api_post(client, "send").status_code == 202
    with time_machine.travel(clock + 4 * 30 + 1):  # past the next cooldown: the cap holds
        assert_rate_limited(api_post(client, "send"))
    assert 29 <= waits[0] <= 31
    assert 59 <= waits[1] <= 61  # the cooldown doubles with every send
    assert sim.request_count("send") == 3


@pytest.mark.security("T38")
def test_reloading_the_code_page_or_polling_the_api_never_sends_again(sim, phone_user):
    browser = Client()
    browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    now = time.time()
    for minute in range(5):
        with time_machine.travel(now + 61 * minute):  # even after every cooldown
            assert browser.get(VERIFY_PAGE).status_code == 200
            assert browser.get(API["status"]).json()["state"] == "pending"
            assert browser.get(API["send"]).status_code == 405
            assert browser.head(VERIFY_PAGE).status_code in (200, 405)
    assert sim.request_count("send") == 1


# --- T39: the global budget ----------------------------------------------------------------


@pytest.mark.security("T39")
def test_an_exhausted_send_budget_refuses_new_sends_but_not_verification(
    sim, django_user_model, settings, caplog
):
    settings.INFOBIP_OTP_SEND_BUDGET = 3
    caplog.set_level(logging.WARNING, logger="infobip_otp")
    alerts = []

    def on_budget_exhausted(sender, budget, **kwargs):
        alerts.append(budget)

    signals.otp_budget_exhausted.connect(on_budget_exhausted)
    try:
        clients = []
        for i in range(5):
            account(django_user_model, f"user{i}", f"+44740012350{i}")
            clients.append(signed_in(f"user{i}", ip=f"198.51.100.{i + 1}"))
        answers = [api_post(client, "send") for client in clients]
    finally:
        signals.otp_budget_exhausted.disconnect(on_budget_exhausted)

    assert [answer.status_code for answer in answers] == [202, 202, 202, 503, 503]
    for refused in answers[3:]:
        assert refused.json()["code"] == "send_budget_exhausted"
        assert int(refused["Retry-After"]) >= 1
    assert sim.request_count("send") == 3
    assert alerts == [3, 3]
    assert [
        r.event for r in caplog.records if getattr(r, "event", "") == "otp.budget_exhausted"
    ] == ["otp.budget_exhausted"] * 2
    # Codes already sent still work.
    for i in range(3):
        pin = sim.last_pin(f"+44740012350{i}")
        sim.advance(3)
        assert api_post(clients[i], "verify", {"pin": pin}).json() == {"state": "verified"}


# --- T40: changing the number ---------------------------------------------------------------

NEW_PHONE = "+447400999888"


@pytest.mark.security("T40")
def test_a_pending_session_cannot_change_the_number(sim, phone_user):
    attacker = signed_in("alice")  # has the password, not the phone

    answers = [
        api_post(attacker, "phone", {"phone_number": NEW_PHONE}),
        api_post(attacker, "send", {"phone_number": NEW_PHONE}),
    ]
    page = attacker.post(PHONE_PAGE, {"phone_number": NEW_PHONE})

    for answer in answers:
        assert answer.status_code == 401 and answer.json()["code"] == "otp_required"
    assert page.status_code == 302 and page.url.startswith(VERIFY_PAGE)
    assert sim.request_count("send") == 0
    assert PhoneDevice.objects.get().phone_number == PHONE


@pytest.mark.security("T40")
def test_a_stale_session_cannot_change_the_number(sim, phone_user, settings):
    timed_out = signed_in("alice")
    with time_machine.travel(time.time() + app_settings.LOGIN_TIMEOUT + 1):
        answer = api_post(timed_out, "phone", {"phone_number": NEW_PHONE})
    assert answer.status_code == 401
    assert timed_out.get(API["status"]).json()["state"] == "anonymous"  # logged out

    # A verified session whose password was changed elsewhere is logged out too.
    old = verified_session(sim, "alice", PHONE)
    phone_user.set_password("a-new-password-42")
    phone_user.save()
    answer = api_post(old, "phone", {"phone_number": NEW_PHONE})
    assert answer.status_code == 401
    assert sim.request_count("send") == 1  # the verified session's own login code
    assert PhoneDevice.objects.get().phone_number == PHONE


@pytest.mark.security("T40")
def test_a_number_changes_only_with_a_code_from_the_new_number(sim, phone_user):
    owner = verified_session(sim, "alice", PHONE)
    assert api_post(owner, "phone", {"phone_number": NEW_PHONE}).status_code == 202
    new_pin = sim.last_pin(NEW_PHONE)

    sim.advance(3)
    refused = api_post(owner, "verify", {"pin": wrong(new_pin)})
    assert refused.json()["code"] == "invalid_pin"
    assert PhoneDevice.objects.get().phone_number == PHONE
    # The code of the old number does not confirm the new one.
    sim.advance(3)
    assert api_post(owner, "verify", {"pin": sim.last_pin(PHONE)}).status_code == 400
    assert PhoneDevice.objects.get().phone_number == PHONE


@pytest.mark.security("T40")
def test_changing_the_number_notifies_and_revokes_what_the_old_one_unlocked(
    sim, phone_user, settings
):
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 30
    # A browser the owner once trusted.
    trusted = Client()
    trusted.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    trusted.get(VERIFY_PAGE)
    trusted.post(VERIFY_PAGE, {"pin": sim.last_pin(PHONE), "remember": "on"})
    assert trusted.cookies.get(COOKIE_NAME)
    trusted.post("/accounts/logout/")
    # An attacker with the password and the old SIM holds a code sent to the old number.
    attacker = signed_in("alice", ip="203.0.113.66")
    sim.advance(3)
    assert api_post(attacker, "send").status_code == 202
    attackers_code = sim.last_pin(PHONE)

    owner = verified_session(sim, "alice", PHONE)
    sim.advance(3)
    assert api_post(owner, "phone", {"phone_number": NEW_PHONE}).status_code == 202
    sim.advance(3)
    confirmed = api_post(owner, "verify", {"pin": sim.last_pin(NEW_PHONE)})
    assert confirmed.json() == {"state": "verified", "phone": "+44*******888"}

    # The user hears of it by e-mail, numbers masked.
    [notice] = [m for m in mail.outbox if "phone number" in m.subject]
    assert "+44*******888" in notice.body and "+44*******456" in notice.body
    assert NEW_PHONE not in notice.body and PHONE not in notice.body
    # The trusted browser must prove the new number again.
    trusted.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert trusted.get(API["status"]).json()["state"] == "pending"
    # The code sent to the old number before the change no longer signs anyone in.
    sim.advance(3)
    late = api_post(attacker, "verify", {"pin": attackers_code})
    assert late.status_code == 400, late.content
    assert attacker.get(API["status"]).json()["state"] == "pending"
    assert not OtpChallenge.objects.filter(
        purpose=Purpose.LOGIN, phone_number=PHONE, status=Status.PENDING
    ).exists()
