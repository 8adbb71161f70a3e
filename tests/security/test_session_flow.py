"""Session and flow integrity (SECURITY T16-T23), attacked over HTTP."""

import base64
import json
import re
from datetime import timedelta
from importlib import import_module
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.admindocs.views import extract_views_from_urlpatterns, simplify_regex
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client
from django.urls import get_resolver, resolve
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from infobip_otp.backends import locmem
from infobip_otp.exceptions import LoginExpired, NotAuthenticated, OtpRequired
from infobip_otp.models import OtpChallenge, PhoneDevice, Status
from tests.security.conftest import API, PASSWORD, PHONE, VERIFY_PAGE, api_post

pytestmark = pytest.mark.django_db

LOGIN_PAGE = "/accounts/login/"
ALICE = {"username": "alice", "password": PASSWORD}
NEW_PHONE = "+447400999888"
OTP_REQUIRED = OtpRequired().as_dict()
LOGIN_EXPIRED = LoginExpired().as_dict()
SIGNED_OUT = NotAuthenticated().as_dict()


def login_challenge_of(client):
    return OtpChallenge.objects.get(public_id=client.session["_infobip_otp"]["challenge"])


def api_state(client):
    return client.get(API["status"]).json()["state"]


# --- T16: every URL of the project, every method ------------------------------------

PROJECT_URLCONF = "tests.security.urls_token"
METHODS = ("get", "head", "options", "post", "put", "patch", "delete")
# A body for every form that could change an account, were it to get through.
TAKEOVER_FORM = {
    "username": "mallory",
    "email": "mallory@evil.example",
    "password": "Mallory-pass-123",
    "password1": "Mallory-pass-123",
    "password2": "Mallory-pass-123",
    "old_password": PASSWORD,
    "new_password1": "Mallory-pass-123",
    "new_password2": "Mallory-pass-123",
    "is_staff": "on",
    "is_superuser": "on",
    "is_active": "on",
    "phone_number": NEW_PHONE,
    "post": "yes",
}
PLACEHOLDER = re.compile(r"<(?:\w+:)?(\w+)>")
PROJECT_VIEWS = [
    (simplify_regex(regex), namespace, name)
    for _, regex, namespace, name in extract_views_from_urlpatterns(
        get_resolver(PROJECT_URLCONF).url_patterns
    )
]


def is_the_otp_step(namespace, name):
    """What a pending session may use: the OTP pages and API, and logging out."""
    return "infobip_otp" in (namespace or []) or name == "logout"


def concrete_path(route, user):
    """``route`` with every parameter filled in with a value naming ``user``'s data."""
    values = {
        "object_id": str(user.pk),
        "id": str(user.pk),
        "content_type_id": str(ContentType.objects.get_for_model(user).pk),
        "app_label": "auth",
        "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": default_token_generator.make_token(user),
        "url": "no/such/page/",
    }
    return PLACEHOLDER.sub(lambda match: values[match[1]], route)


@pytest.fixture
def pending_admin(phone_user):
    """A superuser's browser past the password step only."""
    phone_user.is_staff = phone_user.is_superuser = True
    phone_user.save()
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE)
    assert api_state(browser) == "pending"
    return browser


@pytest.mark.security("T16")
@pytest.mark.urls(PROJECT_URLCONF)
@pytest.mark.parametrize(
    ("route", "namespace", "name"),
    [view for view in PROJECT_VIEWS if not is_the_otp_step(view[1], view[2])],
    ids=[route for route, namespace, name in PROJECT_VIEWS if not is_the_otp_step(namespace, name)],
)
def test_pending_session_gets_no_data_and_changes_nothing_at_any_url(
    pending_admin, phone_user, django_user_model, route, namespace, name
):
    path = concrete_path(route, phone_user)
    assert resolve(path).url_name == name
    password_hash = phone_user.password

    for method in METHODS:
        for extra in ({}, {"HTTP_ACCEPT": "application/json"}):
            request = getattr(pending_admin, method)
            if method in ("post", "put", "patch"):
                response = request(path, TAKEOVER_FORM, **extra)
            else:
                response = request(path, **extra)
            answer = (method, extra, response.status_code)
            if response.status_code == 401:
                assert method == "head" or response.json() == OTP_REQUIRED, answer
            else:
                assert response.status_code == 302, answer
                assert response["Location"].startswith(VERIFY_PAGE), answer
            assert b"alice" not in response.content, answer

    assert api_state(pending_admin) == "pending"
    phone_user.refresh_from_db()
    assert phone_user.password == password_hash
    assert (phone_user.email, phone_user.is_active) == ("alice@example.com", True)
    assert list(django_user_model.objects.values_list("username", flat=True)) == ["alice"]
    assert PhoneDevice.objects.get().phone_number == PHONE
    assert locmem.outbox == []


@pytest.mark.security("T16")
def test_the_url_walk_covers_the_project_and_leaves_only_the_otp_step_open():
    """The walk above is only as good as its list: it holds every kind of view."""
    routes = {route for route, _, _ in PROJECT_VIEWS}
    for route in (
        "/",
        "/admin/auth/user/<path:object_id>/change/",
        "/admin/r/<path:content_type_id>/<path:object_id>/",
        "/admin/<url>",
        "/accounts/password_change/",
        "/accounts/reset-login/<uidb64>/<token>/",
        "/api/token/",
        "/api/account/",
        "/accounts/code/",
    ):
        assert route in routes
    open_routes = {route for route, ns, name in PROJECT_VIEWS if is_the_otp_step(ns, name)}
    assert open_routes == {
        "/admin/logout/",
        "/accounts/logout/",
        "/otp/verify/",
        "/otp/phone/",
        *(f"/otp/api/{name}/" for name in ("status", "login", "send", "verify", "phone")),
    }


# --- T17 ----------------------------------------------------------------------


@pytest.mark.security("T17")
def test_session_id_and_csrf_token_seen_while_pending_are_worthless_after_the_code(phone_user):
    browser = Client(enforce_csrf_checks=True)
    csrf = browser.get(API["status"]).cookies["csrftoken"].value
    api_post(browser, "login", ALICE, HTTP_X_CSRFTOKEN=csrf)
    pending_key = browser.cookies["sessionid"].value
    pending_csrf = browser.cookies["csrftoken"].value
    api_post(browser, "send", HTTP_X_CSRFTOKEN=pending_csrf)

    verified = api_post(
        browser, "verify", {"pin": locmem.last_pin()}, HTTP_X_CSRFTOKEN=pending_csrf
    )

    assert verified.json() == {"state": "verified"}
    assert verified.cookies["sessionid"].value not in ("", pending_key)
    assert verified.cookies["csrftoken"].value != pending_csrf
    engine = import_module(django_settings.SESSION_ENGINE)
    assert not engine.SessionStore().exists(pending_key)
    thief = Client(enforce_csrf_checks=True)
    thief.cookies["sessionid"] = pending_key
    thief.cookies["csrftoken"] = pending_csrf
    assert api_state(thief) == "anonymous"
    assert thief.get("/")["Location"].startswith(LOGIN_PAGE)
    # The token the thief saw no longer passes the CSRF check of the real session.
    stale = api_post(browser, "phone", {"phone_number": NEW_PHONE}, HTTP_X_CSRFTOKEN=pending_csrf)
    assert stale.status_code == 403
    fresh = api_post(
        browser,
        "phone",
        {"phone_number": NEW_PHONE},
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )
    assert fresh.status_code == 202


# --- T18 ----------------------------------------------------------------------


@pytest.mark.security("T18")
def test_pending_login_past_the_timeout_accepts_neither_code_nor_send(
    pending_client, phone_user, settings
):
    settings.INFOBIP_OTP_LOGIN_TIMEOUT = 120
    settings.INFOBIP_OTP_PIN_TTL = 300  # the code itself would still be alive
    sender = Client()
    api_post(sender, "login", ALICE)
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE)
    browser.get(VERIFY_PAGE)
    browser_pin = locmem.last_pin()
    sent = len(locmem.outbox)

    with time_machine.travel(timezone.now() + timedelta(seconds=121), tick=False):
        code = api_post(pending_client, "verify", {"pin": pending_client.pin})
        send = api_post(sender, "send")
        page = browser.post(VERIFY_PAGE, {"pin": browser_pin})
        retry = api_post(pending_client, "verify", {"pin": pending_client.pin})
        states = {api_state(client) for client in (pending_client, sender, browser)}

    assert (code.status_code, code.json()) == (401, LOGIN_EXPIRED)
    assert (send.status_code, send.json()) == (401, LOGIN_EXPIRED)
    assert (retry.status_code, retry.json()) == (401, SIGNED_OUT)
    assert page.status_code == 302
    assert page["Location"].startswith(LOGIN_PAGE)
    assert states == {"anonymous"}
    assert len(locmem.outbox) == sent
    assert set(OtpChallenge.objects.values_list("status", flat=True)) == {Status.CANCELLED}
    # The way on is the password again.
    api_post(pending_client, "login", ALICE)
    api_post(pending_client, "send")
    assert api_post(pending_client, "verify", {"pin": locmem.last_pin()}).json() == {
        "state": "verified"
    }


# --- T19 ----------------------------------------------------------------------


@pytest.mark.security("T19")
@pytest.mark.parametrize("logout_url", ["/accounts/logout/", "/admin/logout/"])
def test_logout_while_pending_leaves_a_copied_cookie_nothing_to_verify(
    pending_client, phone_user, logout_url
):
    phone_user.is_staff = True
    phone_user.save()
    copy = Client()
    copy.cookies["sessionid"] = pending_client.cookies["sessionid"].value

    assert pending_client.post(logout_url).status_code in (200, 302)

    assert not Session.objects.exists()
    assert OtpChallenge.objects.get().status == Status.CANCELLED
    assert api_post(copy, "verify", {"pin": pending_client.pin}).json() == SIGNED_OUT
    assert api_state(copy) == "anonymous"
    # Not even a new password login of that browser brings the code back.
    api_post(copy, "login", ALICE)
    assert api_post(copy, "verify", {"pin": pending_client.pin}).json()["code"] == "no_challenge"


# --- T20 ----------------------------------------------------------------------


def change_password(user):
    user.set_password("Changed-elsewhere-123")
    user.save()


def deactivate(user):
    user.is_active = False
    user.save()


@pytest.mark.security("T20")
@pytest.mark.parametrize("change", [change_password, deactivate])
def test_right_code_after_a_password_change_or_deactivation_completes_nothing(
    pending_client, phone_user, change
):
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE)
    browser.get(VERIFY_PAGE)
    browser_pin = locmem.last_pin()

    change(phone_user)

    over_api = api_post(pending_client, "verify", {"pin": pending_client.pin})
    over_form = browser.post(VERIFY_PAGE, {"pin": browser_pin})
    assert (over_api.status_code, over_api.json()) == (401, SIGNED_OUT)
    assert over_form.status_code == 302
    assert over_form["Location"].startswith(LOGIN_PAGE)
    for client in (pending_client, browser):
        assert api_state(client) == "anonymous"
        home = client.get("/")
        assert home.status_code == 302
        assert b"home of alice" not in home.content
    assert not OtpChallenge.objects.filter(status=Status.VERIFIED).exists()


# --- T21 ----------------------------------------------------------------------

OFF_SITE = [
    "https://evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "http://testserver/account",  # plain http on an https site
    "https://testserver@evil.example/",
    "https:evil.example",
    " //evil.example",
]


def hidden_next(page):
    return re.findall(r'name="next" value="([^"]*)"', page.content.decode())


@pytest.mark.security("T21")
@pytest.mark.parametrize("target", OFF_SITE)
def test_off_site_next_leads_only_to_login_redirect_url(phone_user, settings, target):
    home = settings.LOGIN_REDIRECT_URL
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE, secure=True)
    evil = {"next": target}

    page = browser.get(VERIFY_PAGE, evil, secure=True)
    assert set(hidden_next(page)) == {home}
    resend = browser.post(f"{VERIFY_PAGE}?{urlencode(evil)}", {"action": "resend"}, secure=True)
    assert parse_qs(urlsplit(resend["Location"]).query)["next"] == [home]
    verified = browser.post(
        f"{VERIFY_PAGE}?{urlencode(evil)}", {"pin": locmem.last_pin(), **evil}, secure=True
    )
    assert verified["Location"] == home
    again = browser.get(VERIFY_PAGE, evil, secure=True)
    assert again["Location"] == home
    phone_page = browser.post("/otp/phone/", {"phone_number": NEW_PHONE, **evil}, secure=True)
    confirmed = browser.post("/otp/phone/", {"pin": locmem.last_pin(), **evil}, secure=True)
    assert phone_page["Location"] == "/otp/phone/"
    assert confirmed["Location"] == home


# --- T22 ----------------------------------------------------------------------

CROSS_SITE = {"HTTP_ORIGIN": "https://evil.example", "HTTP_REFERER": "https://evil.example/x"}


@pytest.fixture
def csrf_browser(phone_user):
    """A browser that enforces CSRF like a real one, past the password step."""
    browser = Client(enforce_csrf_checks=True)
    browser.get(LOGIN_PAGE)
    token = browser.cookies["csrftoken"].value
    browser.post(LOGIN_PAGE, {**ALICE, "csrfmiddlewaretoken": token})
    assert api_state(browser) == "pending"
    return browser


@pytest.mark.security("T22")
def test_cross_site_posts_to_send_and_verify_are_refused_before_any_sms(csrf_browser):
    token = csrf_browser.cookies["csrftoken"].value
    forged = [
        csrf_browser.post(VERIFY_PAGE, {"pin": "123456"}, secure=True, **CROSS_SITE),
        csrf_browser.post(VERIFY_PAGE, {"action": "resend"}, secure=True, **CROSS_SITE),
        api_post(csrf_browser, "send", secure=True, **CROSS_SITE),
        api_post(csrf_browser, "verify", {"pin": "123456"}, secure=True, **CROSS_SITE),
        # A "simple" request, which a cross-site form can send without CORS.
        csrf_browser.post(API["send"], "{}", content_type="text/plain", secure=True, **CROSS_SITE),
        # Even the right token does not help a request from another origin.
        csrf_browser.post(
            VERIFY_PAGE,
            {"action": "resend", "csrfmiddlewaretoken": token},
            secure=True,
            **CROSS_SITE,
        ),
        api_post(csrf_browser, "send", secure=True, HTTP_X_CSRFTOKEN=token, **CROSS_SITE),
    ]

    assert [response.status_code for response in forged] == [403] * len(forged)
    assert locmem.outbox == []
    assert not OtpChallenge.objects.exists()
    assert api_state(csrf_browser) == "pending"
    same_site = api_post(
        csrf_browser,
        "send",
        secure=True,
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="https://testserver",
        HTTP_REFERER="https://testserver/otp/verify/",
    )
    assert same_site.status_code == 202


# --- T23 ----------------------------------------------------------------------

SESSION_ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "cache": "django.contrib.sessions.backends.cache",
    "cached_db": "django.contrib.sessions.backends.cached_db",
    "file": "django.contrib.sessions.backends.file",
    "signed_cookies": "django.contrib.sessions.backends.signed_cookies",
}


def cache_dump():
    """Every key and raw value of the default cache, whatever its backend."""
    store = cache._cache
    if isinstance(store, dict):  # LocMemCache
        return [repr(key) + repr(value) for key, value in store.items()]
    client = store.get_client()  # RedisCache
    ours = client.scan_iter(match=cache.make_key("*"))
    return [repr(key) + repr(client.get(key)) for key in ours]


def session_dump(engine, browsers, folder):
    """Every stored session, raw and decoded, of ``engine``."""
    store = import_module(engine).SessionStore
    keys = [browser.cookies["sessionid"].value for browser in browsers]
    raw = []
    if engine.endswith(".db") or engine.endswith(".cached_db"):
        raw += list(Session.objects.values_list("session_data", flat=True))
    if engine.endswith(".file"):
        raw += [path.read_text() for path in Path(folder).iterdir()]
    if engine.endswith(".signed_cookies"):
        raw += keys
    decoded = [json.dumps(store(session_key=key).load(), default=str) for key in keys]
    return raw + decoded


def secret_patterns(pin):
    password = PASSWORD.encode()
    encodings = {
        base64.b64encode(password).decode().rstrip("="),
        base64.urlsafe_b64encode(password).decode().rstrip("="),
    }
    digits = [PHONE, PHONE[1:], "0" + PHONE[3:], PHONE[3:], pin]
    return [re.escape(PASSWORD), *map(re.escape, encodings)] + [
        rf"(?<!\d){re.escape(number)}(?!\d)" for number in digits
    ]


@pytest.mark.security("T23")
@pytest.mark.parametrize("engine", SESSION_ENGINES.values(), ids=SESSION_ENGINES.keys())
def test_session_store_and_cache_hold_no_password_pin_or_number_while_pending(
    phone_user, settings, tmp_path, engine
):
    settings.SESSION_ENGINE = engine
    settings.SESSION_FILE_PATH = str(tmp_path)
    page_browser = Client()
    page_browser.post(LOGIN_PAGE, ALICE)
    page_browser.get(VERIFY_PAGE)
    api_browser = Client()
    api_post(api_browser, "login", ALICE)
    api_post(api_browser, "send")
    assert [api_state(b) for b in (page_browser, api_browser)] == ["pending", "pending"]

    dump = "\n".join(session_dump(engine, [page_browser, api_browser], tmp_path) + cache_dump())

    assert '"state": "pending"' in dump  # the dump does hold the sessions
    for message in locmem.outbox:
        for pattern in secret_patterns(message.pin):
            assert not re.search(pattern, dump), pattern
