"""Bypass via other paths (SECURITY T24-T29), attacked over HTTP.

The project here is ``tests.security.urls_token``: the test URLs plus a DRF
token endpoint, an API guarded by ``IsOtpVerified`` and a login-by-code view.
"""

import json
from datetime import timedelta

import pytest
import time_machine
from django.contrib.admindocs.views import extract_views_from_urlpatterns, simplify_regex
from django.contrib.auth import SESSION_KEY as AUTH_SESSION_KEY
from django.contrib.auth import views as auth_views
from django.contrib.auth.tokens import default_token_generator
from django.core import checks as django_checks
from django.core import signing
from django.test import Client
from django.urls import get_resolver, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from infobip_otp import checks, trusted_devices
from infobip_otp.api.views import LoginView as ApiLoginView
from infobip_otp.backends import locmem
from infobip_otp.exceptions import OtpRequired
from infobip_otp.models import PhoneDevice
from tests.security.conftest import API, PASSWORD, PHONE, VERIFY_PAGE, api_post, wrong
from tests.security.urls_token import login_code

PROJECT = "tests.security.urls_token"
pytestmark = [pytest.mark.django_db, pytest.mark.urls(PROJECT)]

LOGIN_PAGE = "/accounts/login/"
ALICE = {"username": "alice", "password": PASSWORD}
BOB = {"username": "bob", "password": "pw-bob-123"}
ACCOUNT_API = "/api/account/"
OTP_REQUIRED = OtpRequired().as_dict()
TRUSTED = trusted_devices.COOKIE_NAME


def api_state(client, **extra):
    return client.get(API["status"], **extra).json()["state"]


def pass_the_code(browser, **form):
    """Through the code page, as a browser does: open it (sends the code), enter it."""
    browser.get(VERIFY_PAGE)
    response = browser.post(VERIFY_PAGE, {"pin": locmem.last_pin(), **form})
    assert response.status_code == 302
    return response


def assert_held_at_the_code(client):
    """Signed in with the password, but nothing past the second factor."""
    assert AUTH_SESSION_KEY in client.session
    assert api_state(client) == "pending"
    assert client.get("/")["Location"].startswith(VERIFY_PAGE)
    assert client.get("/admin/")["Location"].startswith(VERIFY_PAGE)
    account = client.get(ACCOUNT_API, HTTP_ACCEPT="application/json")
    assert (account.status_code, account.json()) == (401, OTP_REQUIRED)


@pytest.fixture
def staff_alice(phone_user):
    phone_user.is_staff = phone_user.is_superuser = True
    phone_user.save()
    return phone_user


@pytest.fixture
def bob(other_user):
    PhoneDevice.objects.create(user=other_user, phone_number="+447400654321")
    return other_user


# --- T24 ----------------------------------------------------------------------


@pytest.mark.security("T24")
def test_admin_login_opens_no_admin_page_until_the_code(staff_alice, bob):
    admin = Client()
    signed_in = admin.post(
        "/admin/login/?next=/admin/auth/user/", {**ALICE, "next": "/admin/auth/user/"}
    )
    assert signed_in["Location"] == "/admin/auth/user/"
    pages = [
        "/admin/",
        "/admin/auth/user/",
        f"/admin/auth/user/{bob.pk}/change/",
        f"/admin/auth/user/{bob.pk}/password/",
        "/admin/infobip_otp/phonedevice/",
        "/admin/infobip_otp/otpchallenge/",
        "/admin/autocomplete/?app_label=auth&model_name=user&field_name=user&term=bob",
        "/admin/password_change/",
    ]

    for page in pages:
        response = admin.get(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith(VERIFY_PAGE), page
        assert b"bob" not in response.content
    deletion = admin.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [bob.pk], "post": "yes"},
    )
    assert deletion["Location"] == VERIFY_PAGE
    bob.refresh_from_db()
    assert_held_at_the_code(admin)

    assert pass_the_code(admin, next="/admin/auth/user/")["Location"] == "/admin/auth/user/"
    users = admin.get("/admin/auth/user/")
    assert users.status_code == 200
    assert b"bob@example.com" in users.content


# --- T25 ----------------------------------------------------------------------


def obtain_token(endpoint, credentials=ALICE):
    response = Client().post(endpoint, credentials)
    assert response.status_code == 200
    return {"HTTP_AUTHORIZATION": f"Token {response.json()['token']}"}


@pytest.mark.security("T25")
def test_token_from_the_password_alone_reaches_no_protected_api_until_verified(phone_user):
    token = obtain_token("/api/token/")
    client = Client()

    refused = client.get(ACCOUNT_API, **token)
    assert (refused.status_code, refused.json()) == (401, OTP_REQUIRED)
    assert api_state(client, **token) == "pending"
    api_post(client, "send", **token)
    api_post(client, "verify", {"pin": wrong(locmem.last_pin())}, **token)
    assert client.get(ACCOUNT_API, **token).status_code == 401

    assert api_post(client, "verify", {"pin": locmem.last_pin()}, **token).json() == {
        "state": "verified"
    }
    assert client.get(ACCOUNT_API, **token).json() == {
        "username": "alice",
        "email": "alice@example.com",
    }


@pytest.mark.security("T25")
def test_code_passed_in_the_browser_does_not_verify_a_token(phone_user):
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE)
    pass_the_code(browser)
    assert browser.get(ACCOUNT_API).status_code == 200

    token = obtain_token("/api/token/")
    assert Client().get(ACCOUNT_API, **token).status_code == 401
    assert api_state(Client(), **token) == "pending"


@pytest.mark.security("T25")
def test_password_alone_cannot_pick_up_a_token_its_owner_verified(phone_user):
    """The safe way to hand out tokens: a new one for every password login.

    DRF's stock ``obtain_auth_token`` answers every password login with the
    user's one token, so once its owner verified it, the password alone
    gives it out again, verified (see the E010 test below).
    """
    owner = obtain_token("/api/token/fresh/")
    api_post(Client(), "send", **owner)
    api_post(Client(), "verify", {"pin": locmem.last_pin()}, **owner)
    assert Client().get(ACCOUNT_API, **owner).status_code == 200

    attacker = obtain_token("/api/token/fresh/")

    assert attacker != owner
    refused = Client().get(ACCOUNT_API, **attacker)
    assert (refused.status_code, refused.json()) == (401, OTP_REQUIRED)
    # The owner's token is gone too, which tells the owner something happened.
    assert Client().get(ACCOUNT_API, **owner).status_code == 401


@pytest.mark.security("T25")
def test_stock_token_endpoint_stops_the_project_from_starting():
    """DRF's ``obtain_auth_token`` would hand a verified token to the password alone."""
    errors = [e for e in django_checks.run_checks() if e.id == "infobip_otp.E010"]
    assert errors == [
        django_checks.Error(
            checks.E010_MSG.format(route="api/token/"), hint=checks.E010_HINT, id=checks.E010
        )
    ]


@pytest.mark.security("T25")
@pytest.mark.urls("tests.urls")
def test_project_without_a_stock_token_endpoint_starts():
    assert [e for e in django_checks.run_checks() if e.id == "infobip_otp.E010"] == []


# --- T26 ----------------------------------------------------------------------


def reset_password_through_the_auto_login_link(browser, user):
    user.refresh_from_db()  # the token covers the last login time
    link = reverse(
        "reset_login_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    form = browser.get(link)["Location"]
    done = browser.post(
        form, {"new_password1": "Taken-over-pw-42", "new_password2": "Taken-over-pw-42"}
    )
    assert done["Location"] == "/"


@pytest.mark.security("T26")
def test_password_reset_auto_login_ends_pending_even_in_a_trusted_browser(phone_user, settings):
    """Someone with the mailbox resets the password on the owner's trusted computer."""
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 30
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE)
    pass_the_code(browser, remember="on")
    browser.post("/accounts/logout/")
    browser.post(LOGIN_PAGE, ALICE)
    assert api_state(browser) == "verified"  # the trusted cookie works...
    browser.post("/accounts/logout/")

    reset_password_through_the_auto_login_link(browser, phone_user)

    assert TRUSTED in browser.cookies
    assert_held_at_the_code(browser)  # ...but not for the new password


# --- T27 ----------------------------------------------------------------------


def log_in_with_the_login_page(client, user):
    client.post(LOGIN_PAGE, ALICE)


def log_in_with_the_admin_login(client, user):
    user.is_staff = True
    user.save()
    client.post("/admin/login/", ALICE)


def log_in_with_the_reset_link(client, user):
    reset_password_through_the_auto_login_link(client, user)


def log_in_with_the_otp_api(client, user):
    api_post(client, "login", ALICE)


def log_in_with_a_code_sent_by_email(client, user):
    assert client.post("/accounts/code/", {"code": login_code(user)}).content == b"signed in"


def log_in_with_force_login(client, user):
    client.force_login(user)


def log_in_with_client_login(client, user):
    assert client.login(**ALICE)


#: Each login view of the project, by route, and how an attacker with the password uses it.
LOGIN_VIEWS = {
    "/accounts/login/": log_in_with_the_login_page,
    "/admin/login/": log_in_with_the_admin_login,
    "/accounts/reset-login/<uidb64>/<token>/": log_in_with_the_reset_link,
    "/otp/api/login/": log_in_with_the_otp_api,
    "/accounts/code/": log_in_with_a_code_sent_by_email,
}
#: ``login()`` called by code rather than a view.
OTHER_LOGIN_CALLS = [log_in_with_force_login, log_in_with_client_login]


def signs_in(view, namespace, name):
    """Whether a view of the project signs a user in, by what it is."""
    view_class = getattr(view, "view_class", None)
    initkwargs = getattr(view, "view_initkwargs", {})
    if view_class is not None and issubclass(view_class, (auth_views.LoginView, ApiLoginView)):
        return True
    if view_class is not None and issubclass(view_class, auth_views.PasswordResetConfirmView):
        return bool(initkwargs.get("post_reset_login", view_class.post_reset_login))
    return (namespace, name) in ((["admin"], "login"), (None, "sign-in-with-code"))


@pytest.mark.security("T27")
@pytest.mark.parametrize("log_in", [*LOGIN_VIEWS.values(), *OTHER_LOGIN_CALLS])
def test_every_login_path_ends_pending(phone_user, log_in):
    client = Client()
    log_in(client, phone_user)
    assert client.session[AUTH_SESSION_KEY] == str(phone_user.pk)
    assert_held_at_the_code(client)


@pytest.mark.security("T27")
def test_the_login_paths_tested_are_every_one_the_project_has():
    installed = {
        simplify_regex(regex)
        for view, regex, namespace, name in extract_views_from_urlpatterns(
            get_resolver(PROJECT).url_patterns
        )
        if signs_in(view, namespace, name)
    }
    assert installed == set(LOGIN_VIEWS)


# --- T28 ----------------------------------------------------------------------


def trusted_cookie(credentials=ALICE):
    """The 'trust this browser' cookie of a real login with the box ticked."""
    browser = Client()
    browser.post(LOGIN_PAGE, credentials)
    response = pass_the_code(browser, remember="on")
    return response.cookies[TRUSTED].value


def bobs_cookie(alice, bob):
    return trusted_cookie(BOB)


def bobs_cookie_renamed_to_alice(alice, bob):
    """Bob's cookie with Alice's id written into its payload; the signature is Bob's."""
    payload, _, stamp_and_signature = trusted_cookie(BOB).partition(":")
    claims = json.loads(signing.b64_decode(payload.encode()))
    claims["u"] = str(alice.pk)
    forged = signing.b64_encode(json.dumps(claims, separators=(",", ":")).encode()).decode()
    return f"{forged}:{stamp_and_signature}"


def signed_with_a_guessed_key(alice, bob):
    return signing.dumps(
        {"u": str(alice.pk), "f": "0" * 64}, key="guessed", salt="infobip_otp.trusted_device"
    )


def another_features_signed_value(alice, bob):
    """A value the site itself signed for Alice, for its login-by-code feature."""
    return login_code(alice)


def alices_cookie_from_before_her_phone_change(alice, bob):
    cookie = trusted_cookie()
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE)
    pass_the_code(browser)
    api_post(browser, "phone", {"phone_number": "+447400999888"})
    api_post(browser, "verify", {"pin": locmem.last_pin()})
    assert PhoneDevice.objects.get(user=alice).phone_number == "+447400999888"
    return cookie


ATTACKS = [
    bobs_cookie,
    bobs_cookie_renamed_to_alice,
    signed_with_a_guessed_key,
    another_features_signed_value,
    alices_cookie_from_before_her_phone_change,
]


@pytest.mark.security("T28")
@pytest.mark.parametrize("attack", ATTACKS)
def test_trusted_browser_cookie_that_is_not_alices_own_current_one_is_ignored(
    phone_user, bob, settings, attack
):
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 30
    attacker = Client()
    attacker.cookies[TRUSTED] = attack(phone_user, bob)

    assert api_post(attacker, "login", ALICE).json()["state"] == "pending"
    assert_held_at_the_code(attacker)


@pytest.mark.security("T28")
def test_trusted_browser_cookie_past_its_age_is_ignored(phone_user, settings):
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 30
    attacker = Client()
    attacker.cookies[TRUSTED] = trusted_cookie()
    with time_machine.travel(timezone.now() + timedelta(days=30, minutes=1)):
        assert api_post(attacker, "login", ALICE).json()["state"] == "pending"
        assert_held_at_the_code(attacker)


@pytest.mark.security("T28")
def test_alices_own_current_cookie_does_skip_the_code(phone_user, settings):
    """The control: the attacks above fail for their flaw, not for lack of a feature."""
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 30
    browser = Client()
    browser.cookies[TRUSTED] = trusted_cookie()
    assert api_post(browser, "login", ALICE).json()["state"] == "verified"
    assert browser.get(ACCOUNT_API).status_code == 200


# --- T29 ----------------------------------------------------------------------

CLAIMS = {"otp_verified": True, "verified": True, "state": "verified", "_infobip_otp": "verified"}
CLAIM_HEADERS = {
    "HTTP_X_DEBUG": "1",
    "HTTP_X_OTP_VERIFIED": "1",
    "HTTP_X_INFOBIP_OTP_STATE": "verified",
    "HTTP_X_FORWARDED_USER": "alice",
    "REMOTE_USER": "alice",
}
CLAIM_COOKIES = {
    "_infobip_otp": '{"state": "verified"}',
    "otp_verified": "1",
    "sessionid_verified": "1",
    "sessionid2": "verified",
    TRUSTED: "verified",
}


@pytest.mark.security("T29")
def test_every_writable_input_claiming_verification_is_ignored(phone_user, settings):
    settings.DEBUG = True  # not even a debug site reads such hints
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 30
    client = Client(**CLAIM_HEADERS)
    for name, value in CLAIM_COOKIES.items():
        client.cookies[name] = value

    login = api_post(client, "login", {**ALICE, **CLAIMS})
    status = client.get(API["status"], CLAIMS)
    sent = api_post(client, "send", CLAIMS)
    guess = api_post(client, "verify", {"pin": wrong(locmem.last_pin()), **CLAIMS})
    page = client.post(VERIFY_PAGE, {"pin": wrong(locmem.last_pin()), "remember": "on", **CLAIMS})

    assert login.json() == {"state": "pending", "phone": "+44*******456"}
    assert status.json()["state"] == "pending"
    assert sent.status_code == 202
    assert guess.json()["code"] == "invalid_pin"
    assert page.status_code == 200
    assert client.cookies[TRUSTED].value == "verified"  # no real one set on a failure
    assert_held_at_the_code(client)
    assert PhoneDevice.objects.get().phone_number == PHONE
