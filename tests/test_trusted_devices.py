"""'Trust this browser' (INFOBIP_OTP_REMEMBER_DEVICE_DAYS, SECURITY T28)."""

import time

import pytest
import time_machine
from django.core import signing
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from infobip_otp import state, trusted_devices
from infobip_otp.backends import locmem
from infobip_otp.models import PhoneDevice

pytestmark = pytest.mark.django_db

PHONE = "+447400123456"
PASSWORD = "pw-alice-123"
VERIFY_URL = "/otp/verify/"
COOKIE = trusted_devices.COOKIE_NAME
DAY = 24 * 3600


@pytest.fixture(autouse=True)
def remember_for_30_days(settings):
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 30


@pytest.fixture
def phone_user(user):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    return user


def log_in(client, username="alice", password=PASSWORD, **extra):
    response = client.post(
        "/accounts/login/", {"username": username, "password": password}, **extra
    )
    assert response.status_code == 302
    return client.session[state.SESSION_KEY]["state"]


def pass_the_code(client, *, remember, **extra):
    page = client.get(VERIFY_URL, **extra)
    data = {"pin": locmem.last_pin()}
    if remember:
        data["remember"] = "on"
    response = client.post(VERIFY_URL, data, **extra)
    assert response.status_code == 302
    assert client.session[state.SESSION_KEY]["state"] == state.VERIFIED
    return page, response


def trusted_client(username="alice", password=PASSWORD):
    """A browser that logged in once with "Trust this browser" ticked, then logged out."""
    client = Client()
    assert log_in(client, username, password) == state.PENDING
    pass_the_code(client, remember=True)
    client.post("/accounts/logout/")
    assert COOKIE in client.cookies
    return client


def test_remember_box_is_offered(client, phone_user):
    log_in(client)
    page = client.get(VERIFY_URL)
    assert b'name="remember"' in page.content
    assert b"Trust this browser" in page.content


def test_ticking_remember_sets_a_locked_down_cookie(client, phone_user):
    log_in(client)
    _, response = pass_the_code(client, remember=True)
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == 30 * DAY
    assert not cookie["secure"]


def test_cookie_is_secure_on_https(client, phone_user):
    log_in(client, secure=True)
    _, response = pass_the_code(client, remember=True, secure=True)
    assert response.cookies[COOKIE]["secure"] is True


def test_not_ticking_remember_sets_no_cookie(client, phone_user):
    log_in(client)
    _, response = pass_the_code(client, remember=False)
    assert COOKIE not in response.cookies


def test_trusted_browser_skips_the_code(phone_user):
    client = trusted_client()
    sent = len(locmem.outbox)
    assert log_in(client) == state.VERIFIED
    assert client.get("/").status_code == 200
    assert len(locmem.outbox) == sent


def test_a_trusted_login_reads_the_number_once(phone_user):
    client = trusted_client()

    with CaptureQueriesContext(connection) as captured:
        assert log_in(client) == state.VERIFIED

    # The policy check and the cookie's fingerprint share one read.
    reads = [q for q in captured.captured_queries if "infobip_otp_phonedevice" in q["sql"]]
    assert len(reads) == 1


def test_trust_lasts_up_to_its_age(phone_user):
    client = trusted_client()
    with time_machine.travel(time.time() + 29 * DAY, tick=False):
        assert log_in(client) == state.VERIFIED


def test_expired_cookie_is_ignored(phone_user):
    client = trusted_client()
    with time_machine.travel(time.time() + 30 * DAY + 60, tick=False):
        assert log_in(client) == state.PENDING
        assert client.get("/").status_code == 302


def test_forged_cookie_is_ignored(client, phone_user):
    client.cookies[COOKIE] = signing.dumps(
        {"u": str(phone_user.pk), "f": "0" * 64},
        key="attacker-key",
        salt="infobip_otp.trusted_device",
    )
    assert log_in(client) == state.PENDING


def test_garbage_cookie_is_ignored(client, phone_user):
    client.cookies[COOKIE] = "not-a-signed-value"
    assert log_in(client) == state.PENDING


def test_other_users_cookie_is_ignored(phone_user, other_user):
    PhoneDevice.objects.create(user=other_user, phone_number="+447400999888")
    bob_browser = trusted_client("bob", "pw-bob-123")
    assert log_in(bob_browser) == state.PENDING


def test_cookie_is_ignored_after_a_password_change(phone_user):
    client = trusted_client()
    phone_user.set_password("N3w-pass-phrase!")
    phone_user.save()
    assert log_in(client, password="N3w-pass-phrase!") == state.PENDING


def test_cookie_is_ignored_after_a_phone_change(phone_user):
    client = trusted_client()
    PhoneDevice.objects.filter(user=phone_user).update(phone_number="+447400999888")
    assert log_in(client) == state.PENDING


def test_feature_off_offers_no_box_and_sets_no_cookie(client, phone_user, settings):
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 0
    log_in(client)
    page, response = pass_the_code(client, remember=True)
    assert b'name="remember"' not in page.content
    assert b"Trust this browser" not in page.content
    assert COOKIE not in response.cookies


def test_feature_switched_off_ignores_existing_cookies(phone_user, settings):
    client = trusted_client()
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 0
    assert log_in(client) == state.PENDING
