"""The login second step over HTTP: pending sessions, the middleware and the pages."""

import time

import pytest
from django.contrib.auth import SESSION_KEY as AUTH_SESSION_KEY
from django.test import Client
from django.urls import reverse

from infobip_otp import state
from infobip_otp.backends import locmem
from infobip_otp.models import OtpChallenge, PhoneDevice, Status

pytestmark = pytest.mark.django_db

PHONE = "+447400123456"
PASSWORD = "pw-alice-123"
VERIFY_URL = reverse("infobip_otp:verify")
PHONE_URL = reverse("infobip_otp:phone")


@pytest.fixture
def phone_user(user):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    return user


def password_login(client, username="alice", password=PASSWORD, next_url=None):
    data = {"username": username, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/accounts/login/", data)


def otp_state(client):
    return client.session.get(state.SESSION_KEY)


def wrong(pin):
    return "".join(str((int(d) + 1) % 10) for d in pin)


def test_password_login_leaves_the_session_pending(client, phone_user):
    response = password_login(client)
    assert response.status_code == 302
    assert otp_state(client)["state"] == state.PENDING
    assert client.session[AUTH_SESSION_KEY] == str(phone_user.pk)
    home = client.get("/")
    assert home.status_code == 302
    assert home["Location"] == f"{VERIFY_URL}?next=%2F"


def test_pending_state_holds_no_secret(client, phone_user):
    password_login(client)
    client.get(VERIFY_URL)
    pin = locmem.last_pin()
    stored = repr(dict(client.session.items()))
    assert PASSWORD not in stored
    assert pin not in stored
    assert PHONE not in stored and PHONE[1:] not in stored
    assert set(otp_state(client)) == {"state", "user_id", "since", "challenge", "sent"}


def test_user_without_phone_is_not_asked_under_the_default_policy(client, user):
    password_login(client)
    assert otp_state(client)["state"] == state.NOT_REQUIRED
    assert client.get("/").status_code == 200


def test_verify_page_sends_the_first_code_once(client, phone_user):
    password_login(client)
    page = client.get(VERIFY_URL)
    assert page.status_code == 200
    assert len(locmem.outbox) == 1
    html = page.content.decode()
    assert "+44*******456" in html
    assert PHONE not in html
    assert 'autocomplete="one-time-code"' in html
    assert 'inputmode="numeric"' in html
    assert "5 attempts left" in html
    client.get(VERIFY_URL)
    client.get(VERIFY_URL)
    assert len(locmem.outbox) == 1


def test_right_code_completes_login_and_cycles_session_and_csrf(client, phone_user):
    client = Client(enforce_csrf_checks=True)
    password_login_csrf(client)
    page = client.get(VERIFY_URL + "?next=/")
    csrf_before = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else None
    csrf_before = csrf_before or client.cookies["csrftoken"].value
    key_before = client.session.session_key
    response = client.post(
        VERIFY_URL,
        {"pin": locmem.last_pin(), "next": "/", "csrfmiddlewaretoken": csrf_before},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session.session_key != key_before
    assert client.cookies["csrftoken"].value != csrf_before
    assert otp_state(client)["state"] == state.VERIFIED
    assert client.get("/").status_code == 200
    stale = Client()
    stale.cookies["sessionid"] = key_before
    assert stale.get("/").status_code == 302


def password_login_csrf(client):
    client.get("/accounts/login/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    return response


def test_wrong_code_shows_an_error_and_attempts_left(client, phone_user):
    password_login(client)
    client.get(VERIFY_URL)
    typed = wrong(locmem.last_pin())
    response = client.post(VERIFY_URL, {"pin": typed})
    assert response.status_code == 200
    html = response.content.decode()
    assert "The code is not correct." in html
    assert typed not in html
    assert "4 attempts left" in html
    assert otp_state(client)["state"] == state.PENDING


def test_malformed_code_is_a_form_error_and_not_an_attempt(client, phone_user):
    password_login(client)
    client.get(VERIFY_URL)
    response = client.post(VERIFY_URL, {"pin": "12ab"})
    assert "Enter the 6-digit code." in response.content.decode()
    assert OtpChallenge.objects.get().attempts == 0


def test_used_code_cannot_be_replayed(client, phone_user):
    password_login(client)
    client.get(VERIFY_URL)
    pin = locmem.last_pin()
    client.post(VERIFY_URL, {"pin": pin})
    client.post("/accounts/logout/")
    password_login(client)
    client.get(VERIFY_URL)
    response = client.post(VERIFY_URL, {"pin": pin})
    if locmem.last_pin() == pin:
        pytest.fail("two random PINs collided; rerun")
    assert response.status_code == 200
    assert otp_state(client)["state"] == state.PENDING


def test_code_from_another_session_is_refused_and_counted(phone_user):
    a, b = Client(), Client()
    password_login(a)
    a.get(VERIFY_URL)
    pin_a = locmem.last_pin()
    password_login(b)
    b.get(VERIFY_URL)
    if locmem.last_pin() == pin_a:
        pytest.fail("two random PINs collided; rerun")
    response = b.post(VERIFY_URL, {"pin": pin_a})
    assert "The code is not correct." in response.content.decode()
    assert otp_state(b)["state"] == state.PENDING
    challenge_b = OtpChallenge.objects.get(public_id=otp_state(b)["challenge"])
    assert challenge_b.attempts == 1


def test_resend_respects_the_cooldown(client, phone_user, settings):
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 30
    password_login(client)
    page = client.get(VERIFY_URL)
    assert "You can ask for a new code in 30 seconds." in page.content.decode()
    response = client.post(VERIFY_URL, {"action": "resend"}, follow=True)
    assert "Please wait" in response.content.decode()
    assert len(locmem.outbox) == 1


def test_resend_sends_a_new_code(client, phone_user, settings):
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    password_login(client)
    client.get(VERIFY_URL)
    old = locmem.last_pin()
    response = client.post(VERIFY_URL, {"action": "resend"}, follow=True)
    assert "A new code is on its way." in response.content.decode()
    assert len(locmem.outbox) == 2
    new = locmem.last_pin()
    if new == old:
        pytest.fail("two random PINs collided; rerun")
    client.post(VERIFY_URL, {"pin": old})
    assert otp_state(client)["state"] == state.PENDING
    client.post(VERIFY_URL, {"pin": new})
    assert otp_state(client)["state"] == state.VERIFIED


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "http://testserver/account",
    ],
)
def test_unsafe_next_goes_to_login_redirect_url(client, phone_user, next_url, settings):
    password_login(client)
    client.get(VERIFY_URL)
    response = client.post(VERIFY_URL, {"pin": locmem.last_pin(), "next": next_url}, secure=True)
    assert response.status_code == 302
    assert response["Location"] == settings.LOGIN_REDIRECT_URL


def test_safe_next_is_followed(client, phone_user):
    password_login(client)
    client.get(VERIFY_URL)
    response = client.post(VERIFY_URL, {"pin": locmem.last_pin(), "next": "/admin/"})
    assert response["Location"] == "/admin/"


def test_json_request_in_pending_gets_401_otp_required(client, phone_user):
    password_login(client)
    response = client.get("/", headers={"accept": "application/json"})
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Enter the code we sent you to continue.",
        "code": "otp_required",
    }


def test_pending_login_times_out(client, phone_user, settings):
    settings.INFOBIP_OTP_LOGIN_TIMEOUT = 60
    password_login(client)
    session = client.session
    data = session[state.SESSION_KEY]
    data["since"] = time.time() - 61
    session[state.SESSION_KEY] = data
    session.save()
    response = client.get(VERIFY_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)
    assert AUTH_SESSION_KEY not in client.session
    assert len(locmem.outbox) == 0


def test_logout_while_pending_cancels_the_challenge(client, phone_user):
    password_login(client)
    client.get(VERIFY_URL)
    pin = locmem.last_pin()
    old_key = client.session.session_key
    client.post("/accounts/logout/")
    challenge = OtpChallenge.objects.get()
    assert challenge.status == Status.CANCELLED
    stale = Client()
    stale.cookies["sessionid"] = old_key
    response = stale.post(VERIFY_URL, {"pin": pin})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_admin_login_ends_pending(client, phone_user):
    phone_user.is_staff = phone_user.is_superuser = True
    phone_user.save()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "alice", "password": PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 302
    assert otp_state(client)["state"] == state.PENDING
    admin = client.get("/admin/")
    assert admin.status_code == 302
    assert admin["Location"] == f"{VERIFY_URL}?next=%2Fadmin%2F"
    client.get(VERIFY_URL)
    client.post(VERIFY_URL, {"pin": locmem.last_pin()})
    assert client.get("/admin/").status_code == 200


def test_password_reset_auto_login_ends_pending(client, phone_user, settings):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(phone_user.pk))
    token = default_token_generator.make_token(phone_user)
    url = reverse("reset_login_confirm", kwargs={"uidb64": uid, "token": token})
    form_url = client.get(url)["Location"]
    response = client.post(
        form_url, {"new_password1": "N3w-pass-phrase!", "new_password2": "N3w-pass-phrase!"}
    )
    assert response.status_code == 302
    assert client.session[AUTH_SESSION_KEY] == str(phone_user.pk)
    assert otp_state(client)["state"] == state.PENDING
    assert client.get("/").status_code == 302


def test_any_login_call_ends_pending(client, phone_user):
    client.force_login(phone_user)
    assert otp_state(client)["state"] == state.PENDING
    assert client.get("/").status_code == 302


def test_everyone_policy_sends_users_without_phone_to_enrolment(client, user, settings):
    settings.INFOBIP_OTP_REQUIRED = "everyone"
    password_login(client)
    assert otp_state(client)["state"] == state.ENROLL
    assert client.get("/")["Location"].startswith(VERIFY_URL)
    assert client.get(VERIFY_URL)["Location"] == PHONE_URL
    client.post(PHONE_URL, {"phone_number": "07400 123456"})
    assert locmem.outbox[-1].to == PHONE
    response = client.post(PHONE_URL, {"pin": locmem.last_pin()})
    assert response.status_code == 302
    assert PhoneDevice.objects.get(user=user).phone_number == PHONE
    assert otp_state(client)["state"] == state.VERIFIED
    assert client.get("/").status_code == 200


def test_callable_policy(client, phone_user, settings):
    settings.INFOBIP_OTP_REQUIRED = "tests.policies.staff_only"
    password_login(client)
    assert otp_state(client)["state"] == state.NOT_REQUIRED
    phone_user.is_staff = True
    phone_user.save()
    client.post("/accounts/logout/")
    password_login(client)
    assert otp_state(client)["state"] == state.PENDING


def test_pending_user_cannot_change_phone(client, phone_user):
    password_login(client)
    response = client.post(PHONE_URL, {"phone_number": "+447400999888"})
    assert response["Location"] == VERIFY_URL
    assert len(locmem.outbox) == 0
    assert PhoneDevice.objects.get(user=phone_user).phone_number == PHONE


def test_verified_user_changes_phone_by_verifying_the_new_number(client, phone_user):
    password_login(client)
    client.get(VERIFY_URL)
    client.post(VERIFY_URL, {"pin": locmem.last_pin()})
    response = client.post(PHONE_URL, {"phone_number": "+447400999888"})
    assert response["Location"] == PHONE_URL
    assert locmem.outbox[-1].to == "+447400999888"
    page = client.get(PHONE_URL)
    assert "+44*******888" in page.content.decode()
    assert "+447400999888" not in page.content.decode()
    client.post(PHONE_URL, {"pin": locmem.last_pin()})
    assert PhoneDevice.objects.get(user=phone_user).phone_number == "+447400999888"


def test_phone_page_refuses_bad_numbers(client, phone_user):
    password_login(client)
    client.get(VERIFY_URL)
    client.post(VERIFY_URL, {"pin": locmem.last_pin()})
    sent = len(locmem.outbox)
    for number, message in [
        ("not a number", "Enter a valid mobile phone number."),
        ("+19005550123", "Enter a mobile phone number."),
    ]:
        response = client.post(PHONE_URL, {"phone_number": number})
        assert response.status_code == 200
        assert message in response.content.decode()
    assert len(locmem.outbox) == sent


def test_repeated_failures_lock_the_factor_and_log_out(client, phone_user, settings):
    settings.INFOBIP_OTP_LOCKOUT_THRESHOLD = 3
    password_login(client)
    client.get(VERIFY_URL)
    pin = locmem.last_pin()
    client.post(VERIFY_URL, {"pin": wrong(pin)})
    client.post(VERIFY_URL, {"pin": wrong(pin)})
    response = client.post(VERIFY_URL, {"pin": wrong(pin)})
    assert response.status_code == 302
    assert AUTH_SESSION_KEY not in client.session
    assert PhoneDevice.objects.get(user=phone_user).is_locked
    password_login(client)
    response = client.get(VERIFY_URL)
    assert response.status_code == 302
    assert AUTH_SESSION_KEY not in client.session
    assert len(locmem.outbox) == 1
