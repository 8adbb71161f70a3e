"""Ways around the second factor (SECURITY T16, T24, T25, T27, T29): all closed.

T16 walks every URL pattern of the demo site, the admin's included, and asks
each one for data from a session that passed only the password step.
"""

import re
import time
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, alogin, get_user_model, login
from django.contrib.auth import SESSION_KEY as AUTH_SESSION_KEY
from django.contrib.sessions.serializers import JSONSerializer
from django.core import signing
from django.http import HttpResponse
from django.test import Client
from django.urls import URLResolver, get_resolver, path, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from infobip_otp import state
from infobip_otp.backends import locmem
from infobip_otp.models import PhoneDevice
from infobip_otp.permissions import IsOtpVerified
from tests import urls as test_urls
from tests.settings_example import EXAMPLE_SITE

pytestmark = pytest.mark.django_db

PHONE = "+447400123456"
PASSWORD = "pw-alice-123"
VERIFY_URL = "/otp/verify/"
EXAMPLE_URLCONF = EXAMPLE_SITE["ROOT_URLCONF"]
OTP_REQUIRED_BODY = {"detail": "Enter the code we sent you to continue.", "code": "otp_required"}
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"

# What a pending session may reach: the OTP pages and API, and logging out.
ALLOWED_NAMESPACE = "infobip_otp"
ALLOWED_VIEW_NAMES = {"logout", "admin:logout", "spa"}

# A form post aimed at every view that changes an account (admin add/change,
# password change, password reset); none of it may take effect.
HOSTILE_POST = {
    "username": "mallory",
    "email": "mallory@evil.example",
    "password1": "Mallory-pass-123",
    "password2": "Mallory-pass-123",
    "old_password": PASSWORD,
    "new_password1": "Changed-pass-123",
    "new_password2": "Changed-pass-123",
    "is_staff": "on",
    "is_superuser": "on",
    "phone_number": "+447400999888",
}


# --- Walking the URL patterns -------------------------------------------------

ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^()]*)\)")
ALTERNATION = re.compile(r"\w+(?:\|\w+)+")
REGEX_SYNTAX = set("^$()[]{}*+?|\\")


def walk(patterns, chain=()):
    """Every URLPattern under ``patterns``, with the resolvers that lead to it."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, (*chain, entry))
        else:
            yield (*chain, entry)


def route_of(chain):
    return "".join(str(entry.pattern) for entry in chain)


def sample_value(regex, preferred):
    """``preferred`` (an object id) if the parameter accepts it, else a fitting stand-in."""
    for candidate in (preferred, "x", "00000000-0000-0000-0000-000000000000"):
        if re.fullmatch(regex, candidate):
            return candidate
    pytest.fail(f"no sample value fits the URL parameter regex {regex!r}")


def sample_piece(pattern, preferred):
    if isinstance(pattern, RoutePattern):

        def fill(match):
            converter = pattern.converters[match["name"]]
            return converter.to_url(converter.to_python(sample_value(converter.regex, preferred)))

        return ROUTE_PARAMETER.sub(fill, str(pattern))
    assert isinstance(pattern, RegexPattern), pattern
    regex = pattern._regex.removeprefix("^").removesuffix("$").removesuffix(r"\Z")

    def fill_group(match):
        body = match["body"]
        if ALTERNATION.fullmatch(body):
            return body.split("|")[0]
        return sample_value(body, preferred)

    piece = REGEX_GROUP.sub(fill_group, regex)
    if REGEX_SYNTAX & set(piece):
        pytest.fail(f"cannot build a sample URL for the pattern {regex!r}")
    return piece


def sample_path(chain, preferred):
    """A concrete path that resolves to the last pattern of ``chain``."""
    url = "/" + "".join(sample_piece(entry.pattern, preferred) for entry in chain)
    match = resolve(url, urlconf=EXAMPLE_URLCONF)
    assert match.func is chain[-1].callback, f"{url} resolves to {match.view_name}, not its own"
    return url, match


EXAMPLE_PATTERNS = list(walk(get_resolver(EXAMPLE_URLCONF).url_patterns))


def is_allowed(match):
    return ALLOWED_NAMESPACE in match.namespaces or match.view_name in ALLOWED_VIEW_NAMES


@pytest.fixture
def example_site(settings):
    for name, value in EXAMPLE_SITE.items():
        setattr(settings, name, value)


@pytest.fixture
def phone_user(user):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def pending(client, phone_user):
    client.force_login(phone_user)
    assert client.session[state.SESSION_KEY]["state"] == state.PENDING
    return client


def test_the_walk_covers_the_whole_demo_site():
    names = {route_of(chain) for chain in EXAMPLE_PATTERNS}
    assert len(names) == len(EXAMPLE_PATTERNS)
    for route in [
        "",
        "admin/",
        "admin/auth/user/<path:object_id>/change/",
        "admin/auth/user/<id>/password/",
        "admin/^(?P<app_label>auth|authtoken|infobip_otp)/$",
        "admin/(?P<url>.*)$",
        "accounts/reset/<uidb64>/<token>/",
        "otp/verify/",
        "otp/api/verify/",
    ]:
        assert route in names


@pytest.mark.parametrize("method", ["GET", "POST", "GET-JSON"])
@pytest.mark.parametrize("chain", EXAMPLE_PATTERNS, ids=route_of)
def test_pending_session_gets_nothing_but_the_otp_step(
    example_site, pending, phone_user, chain, method
):
    url, match = sample_path(chain, str(phone_user.pk))
    if method == "GET":
        response = pending.get(url)
    elif method == "POST":
        response = pending.post(url, HOSTILE_POST)
    else:
        response = pending.get(url, headers={"accept": "application/json"})

    if is_allowed(match):
        assert response.status_code < 500
    elif method == "GET":
        assert response.status_code == 302
        assert response["Location"] == f"{VERIFY_URL}?next={quote(url, safe='')}"
        assert response.content == b""
    elif method == "POST":
        assert response.status_code == 302
        assert response["Location"] == VERIFY_URL
        assert response.content == b""
    else:
        assert response.status_code == 401
        assert response.json() == OTP_REQUIRED_BODY
    phone_user.refresh_from_db()
    assert phone_user.check_password(PASSWORD)
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert PhoneDevice.objects.get(user=phone_user).phone_number == PHONE


def test_pending_session_may_fetch_static_files(example_site, pending):
    response = pending.get("/static/admin/css/base.css")
    # Nothing serves static files in the tests: a 404 proves the request passed.
    assert response.status_code == 404


def test_verified_session_sees_what_the_pending_one_could_not(example_site, pending, phone_user):
    """The walk above is only meaningful if these pages do hold data."""
    pending.get(VERIFY_URL)
    pending.post(VERIFY_URL, {"pin": locmem.last_pin()})
    home = pending.get("/")
    assert home.status_code == 200
    assert b"Welcome, alice" in home.content
    change = pending.get(f"/admin/auth/user/{phone_user.pk}/change/")
    assert change.status_code == 200
    assert b"alice@example.com" in change.content


# --- Other login paths and API clients (own URLs) -------------------------------


def magic_login(request):
    """A third-party style login (e.g. a link sent by e-mail) calling login()."""
    user = get_user_model().objects.get(username=request.GET["user"])
    login(request, user, backend=MODEL_BACKEND)
    return HttpResponse("signed in")


async def async_magic_login(request):
    user = await get_user_model().objects.aget(username=request.GET["user"])
    await alogin(request, user, backend=MODEL_BACKEND)
    return HttpResponse("signed in")


class ProfileApi(APIView):
    authentication_classes = [SessionAuthentication, TokenAuthentication]
    permission_classes = [IsAuthenticated, IsOtpVerified]

    def get(self, request):
        return Response({"username": request.user.username, "email": request.user.email})


urlpatterns = [
    path("magic-login/", magic_login),
    path("async-magic-login/", async_magic_login),
    path("api/profile/", ProfileApi.as_view(), name="api-profile"),
    path("api/token/", obtain_auth_token),
    *test_urls.urlpatterns,
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/magic-login/", "/async-magic-login/"])
def test_any_login_call_ends_pending(client, phone_user, url):
    assert client.get(url, {"user": "alice"}).content == b"signed in"
    assert client.session[AUTH_SESSION_KEY] == str(phone_user.pk)
    assert client.session[state.SESSION_KEY]["state"] == state.PENDING
    assert client.get("/").status_code == 302


def test_test_client_login_ends_pending(client, phone_user):
    assert client.login(username="alice", password=PASSWORD)
    assert client.session[state.SESSION_KEY]["state"] == state.PENDING
    assert client.get("/").status_code == 302


@pytest.mark.urls(__name__)
def test_api_in_a_pending_session_is_refused(pending):
    response = pending.get("/api/profile/", headers={"accept": "application/json"})
    assert response.status_code == 401
    assert response.json() == OTP_REQUIRED_BODY


@pytest.mark.urls(__name__)
def test_api_exempt_from_the_middleware_is_still_refused_by_the_permission(pending, settings):
    settings.INFOBIP_OTP_EXEMPT_URLS = ["api-profile"]
    response = pending.get("/api/profile/")
    assert response.status_code == 401
    assert response.json() == OTP_REQUIRED_BODY


@pytest.mark.urls(__name__)
def test_token_obtained_with_the_password_alone_is_refused(phone_user):
    anonymous = Client()
    issued = anonymous.post("/api/token/", {"username": "alice", "password": PASSWORD})
    assert issued.status_code == 200
    token = issued.json()["token"]
    response = anonymous.get("/api/profile/", headers={"authorization": f"Token {token}"})
    assert response.status_code == 401
    assert response.json() == OTP_REQUIRED_BODY


@pytest.mark.urls(__name__)
def test_existing_token_does_not_lift_a_pending_session(pending, phone_user):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=phone_user)
    response = pending.get(
        "/api/profile/",
        headers={"authorization": f"Token {token.key}", "accept": "application/json"},
    )
    assert response.status_code == 401
    assert b"alice@example.com" not in response.content


# --- T29: the verified flag cannot be written from outside ---------------------


def assert_still_pending(client):
    assert client.session[state.SESSION_KEY]["state"] == state.PENDING
    assert client.get("/").status_code == 302


def test_verified_flag_in_form_fields_is_ignored(pending):
    pending.get(VERIFY_URL)
    pin = locmem.last_pin()
    wrong = "".join(str((int(d) + 1) % 10) for d in pin)
    response = pending.post(
        VERIFY_URL,
        {"pin": wrong, "otp_verified": "1", "state": "verified", state.SESSION_KEY: "verified"},
    )
    assert b"The code is not correct." in response.content
    assert_still_pending(pending)


def test_verified_flag_in_api_body_is_ignored(pending):
    pending.get(VERIFY_URL)
    pin = locmem.last_pin()
    wrong = "".join(str((int(d) + 1) % 10) for d in pin)
    response = pending.post(
        "/otp/api/verify/",
        {"pin": wrong, "state": "verified", "verified": True, "otp_verified": True},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_pin"
    assert_still_pending(pending)


def test_headers_claiming_verification_are_ignored(pending):
    response = pending.get(
        "/",
        headers={
            "x-debug": "1",
            "x-otp-verified": "1",
            "x-infobip-otp": "verified",
            "x-forwarded-user": "alice",
            "x-remote-user": "alice",
        },
    )
    assert response.status_code == 302
    assert_still_pending(pending)


def test_cookies_claiming_verification_are_ignored(pending):
    pending.cookies[state.SESSION_KEY] = "verified"
    pending.cookies["otp_verified"] = "1"
    pending.cookies["infobip_otp_trusted"] = "1"
    assert pending.get("/").status_code == 302
    assert_still_pending(pending)


def forged_session_cookie(user, key):
    data = {
        AUTH_SESSION_KEY: str(user.pk),
        BACKEND_SESSION_KEY: MODEL_BACKEND,
        HASH_SESSION_KEY: user.get_session_auth_hash(),
        state.SESSION_KEY: {"state": state.VERIFIED, "user_id": str(user.pk), "since": time.time()},
    }
    return signing.dumps(
        data,
        key=key,
        salt="django.contrib.sessions.backends.signed_cookies",
        serializer=JSONSerializer,
        compress=True,
    )


def test_session_cookie_forged_to_say_verified_is_rejected(client, phone_user, settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    client.cookies["sessionid"] = forged_session_cookie(phone_user, "attacker-guessed-key")
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(django_settings.LOGIN_URL)
    # The same cookie signed with the server's key is accepted: only the key
    # protects the flag, and the attacker does not have it.
    client.cookies["sessionid"] = forged_session_cookie(phone_user, settings.SECRET_KEY)
    assert client.get("/").status_code == 200
