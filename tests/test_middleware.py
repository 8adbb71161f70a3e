"""OtpRequiredMiddleware: no added queries, async support, what a pending session may reach."""

import time

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY as AUTH_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import path, reverse
from django.utils.functional import SimpleLazyObject

from infobip_otp import state
from infobip_otp.backends import locmem
from infobip_otp.middleware import OtpRequiredMiddleware
from infobip_otp.models import PhoneDevice
from tests import urls as test_urls

PHONE = "+447400123456"
PASSWORD = "pw-alice-123"
VERIFY_URL = "/otp/verify/"
OTP_MIDDLEWARE = "infobip_otp.middleware.OtpRequiredMiddleware"
OTP_REQUIRED_BODY = {"detail": "Enter the code we sent you to continue.", "code": "otp_required"}


async def async_whoami(request):
    user = await request.auser()
    return HttpResponse(f"async page of {user.get_username()}")


def health(request):
    return HttpResponse("healthy")


def public_page(request, slug):
    return HttpResponse(f"public {slug}")


def host_secret(request):
    return HttpResponse("secret of the other host")


class OtherHostUrls:
    """The URLconf of another host, where /health/ is not the health check."""

    urlpatterns = [path("health/", host_secret, name="host-secret")]


class OtherHostMiddleware:
    """Routes requests for other.example with their own URLconf (as django-hosts does)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.get_host() == "other.example":
            request.urlconf = OtherHostUrls
        return self.get_response(request)


urlpatterns = [
    path("async/", async_whoami, name="async-whoami"),
    path("health/", health, name="health"),
    path("public/<slug:slug>/", public_page, name="public-page"),
    *test_urls.urlpatterns,
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


@pytest.fixture
def phone_user(user):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    return user


@pytest.fixture
def pending(client, phone_user):
    """A client whose session passed the password step only."""
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert client.session[state.SESSION_KEY]["state"] == state.PENDING
    return client


@pytest.fixture
def verified(pending):
    pending.get(VERIFY_URL)
    pending.post(VERIFY_URL, {"pin": locmem.last_pin()})
    assert pending.session[state.SESSION_KEY]["state"] == state.VERIFIED
    return pending


@pytest.fixture
def not_required(client, user):
    """A user without a phone under the default policy: no code is asked."""
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert client.session[AUTH_SESSION_KEY] == str(user.pk)
    return client


def without_otp_middleware():
    return [name for name in django_settings.MIDDLEWARE if name != OTP_MIDDLEWARE]


# (a) Zero added queries. A request that reaches the view loads the session
# (1 query) and the user (1 query); the middleware must add nothing to that.
# A pending session is refused after the session load alone, before anything
# touches request.user.
SESSION_LOAD = 1
SESSION_AND_USER_LOAD = 2


@pytest.mark.parametrize(
    ("session_state", "with_middleware", "queries", "status"),
    [
        ("verified", True, SESSION_AND_USER_LOAD, 200),
        ("verified", False, SESSION_AND_USER_LOAD, 200),
        ("not_required", True, SESSION_AND_USER_LOAD, 200),
        ("not_required", False, SESSION_AND_USER_LOAD, 200),
        ("pending", True, SESSION_LOAD, 302),
        ("pending", False, SESSION_AND_USER_LOAD, 200),
    ],
)
def test_middleware_adds_no_database_query(
    request, django_assert_num_queries, session_state, with_middleware, queries, status
):
    session_client = request.getfixturevalue(session_state)
    middleware = django_settings.MIDDLEWARE if with_middleware else without_otp_middleware()
    with override_settings(MIDDLEWARE=middleware):
        probe = Client()
        probe.cookies["sessionid"] = session_client.cookies["sessionid"].value
        with django_assert_num_queries(queries):
            response = probe.get("/")
    assert response.status_code == status


# (b) Async.
def test_middleware_follows_the_mode_of_the_chain():
    async def async_view(request):
        return HttpResponse()

    assert iscoroutinefunction(OtpRequiredMiddleware(async_view))
    assert not iscoroutinefunction(OtpRequiredMiddleware(lambda request: HttpResponse()))


def request_with_state(kind, user):
    session = SessionStore()
    session[AUTH_SESSION_KEY] = str(user.pk)
    session[state.SESSION_KEY] = {
        "state": kind,
        "user_id": str(user.pk),
        "since": time.time(),
        "challenge": None,
        "sent": False,
    }
    session.save()
    request = RequestFactory().get("/account/?tab=1")
    request.session = session
    # The middleware must decide from the session alone.
    request.user = SimpleLazyObject(lambda: pytest.fail("the middleware touched request.user"))
    return request


def test_async_middleware_redirects_a_pending_session(phone_user):
    reached = []

    async def inner(request):
        reached.append(request)
        return HttpResponse("secret")

    response = async_to_sync(OtpRequiredMiddleware(inner))(
        request_with_state(state.PENDING, phone_user)
    )
    assert response.status_code == 302
    assert response["Location"] == f"{VERIFY_URL}?next=%2Faccount%2F%3Ftab%3D1"
    assert reached == []


def test_async_middleware_passes_a_verified_session(phone_user):
    async def inner(request):
        return HttpResponse("secret")

    response = async_to_sync(OtpRequiredMiddleware(inner))(
        request_with_state(state.VERIFIED, phone_user)
    )
    assert response.status_code == 200
    assert response.content == b"secret"


def async_client_for(session_client):
    client = AsyncClient()
    client.cookies["sessionid"] = session_client.cookies["sessionid"].value
    return client


def test_async_client_pending_session_is_redirected(pending):
    response = async_to_sync(async_client_for(pending).get)("/async/")
    assert response.status_code == 302
    assert response["Location"] == f"{VERIFY_URL}?next=%2Fasync%2F"


def test_async_client_pending_json_request_gets_401(pending):
    response = async_to_sync(async_client_for(pending).get)(
        "/async/", headers={"accept": "application/json"}
    )
    assert response.status_code == 401
    assert response.json() == OTP_REQUIRED_BODY


def test_async_client_verified_session_reaches_the_async_view(verified):
    response = async_to_sync(async_client_for(verified).get)("/async/")
    assert response.status_code == 200
    assert response.content == b"async page of alice"


# (c) What a pending session may reach.
def test_pending_may_open_the_code_page(pending):
    response = pending.get(VERIFY_URL)
    assert response.status_code == 200
    assert b"Enter your code" in response.content


def test_pending_phone_page_is_reached_and_sends_back_to_the_code_page(pending):
    response = pending.get("/otp/phone/")
    # The view's own redirect (no next): the middleware let the request through.
    assert response.status_code == 302
    assert response["Location"] == VERIFY_URL


def test_pending_may_log_out(pending):
    response = pending.post("/accounts/logout/")
    assert response.status_code == 200
    assert b"Logged out" in response.content
    assert AUTH_SESSION_KEY not in pending.session
    assert state.SESSION_KEY not in pending.session


@pytest.mark.parametrize("static_url", ["/static/", "assets/"])
def test_pending_may_fetch_static_files(pending, settings, static_url):
    settings.STATIC_URL = static_url
    prefix = static_url if static_url.startswith("/") else f"/{static_url}"
    response = pending.get(f"{prefix}admin/css/base.css")
    # Nothing serves static files in the tests: a 404 proves the request passed.
    assert response.status_code == 404


def test_pending_may_reach_an_exempt_view_name(pending, settings):
    settings.INFOBIP_OTP_EXEMPT_URLS = ["health"]
    response = pending.get("/health/")
    assert response.status_code == 200
    assert response.content == b"healthy"


def test_pending_may_reach_an_exempt_path_prefix(pending, settings):
    settings.INFOBIP_OTP_EXEMPT_URLS = ["/public/"]
    response = pending.get("/public/terms/")
    assert response.status_code == 200
    assert response.content == b"public terms"
    assert pending.get("/health/").status_code == 302


@pytest.mark.parametrize(
    ("path", "next_value"),
    [
        ("/", "%2F"),
        ("/admin/", "%2Fadmin%2F"),
        ("/health/", "%2Fhealth%2F"),
        ("/async/?a=1&b=two", "%2Fasync%2F%3Fa%3D1%26b%3Dtwo"),
        ("/no-such-page/", "%2Fno-such-page%2F"),
        ("/accounts/login/", "%2Faccounts%2Flogin%2F"),
        ("/accounts/password_change/", "%2Faccounts%2Fpassword_change%2F"),
    ],
)
def test_pending_html_request_is_redirected_with_next(pending, path, next_value):
    response = pending.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"{VERIFY_URL}?next={next_value}"
    assert response.content == b""


def test_pending_browser_accept_header_gets_the_redirect(pending):
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = pending.get("/", headers={"accept": accept})
    assert response.status_code == 302


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"accept": "application/json"}},
        {"headers": {"x-requested-with": "XMLHttpRequest"}},
    ],
    ids=["accept-json", "xhr"],
)
def test_pending_api_request_gets_401_otp_required(pending, kwargs):
    response = pending.get("/", **kwargs)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == OTP_REQUIRED_BODY


def test_pending_json_post_gets_401_otp_required(pending):
    response = pending.post("/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json() == OTP_REQUIRED_BODY


def test_pending_form_post_is_redirected_without_next(pending):
    response = pending.post("/admin/auth/user/add/", {"username": "mallory"})
    assert response.status_code == 302
    assert response["Location"] == VERIFY_URL


def test_timed_out_json_request_gets_401_login_expired_and_the_session_ends(pending, settings):
    settings.INFOBIP_OTP_LOGIN_TIMEOUT = 60
    session = pending.session
    session[state.SESSION_KEY] = {**session[state.SESSION_KEY], "since": time.time() - 61}
    session.save()
    response = pending.get(VERIFY_URL, headers={"accept": "application/json"})
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Your sign-in expired. Sign in again.",
        "code": "login_expired",
    }
    assert AUTH_SESSION_KEY not in pending.session


def test_exemptions_are_judged_in_the_urlconf_the_request_is_routed_with(pending, settings):
    settings.ALLOWED_HOSTS = ["testserver", "other.example"]
    settings.INFOBIP_OTP_EXEMPT_URLS = ["health"]
    chain = list(django_settings.MIDDLEWARE)
    chain.insert(chain.index(OTP_MIDDLEWARE), f"{__name__}.OtherHostMiddleware")
    settings.MIDDLEWARE = chain
    probe = Client(HTTP_HOST="other.example")
    probe.cookies["sessionid"] = pending.cookies["sessionid"].value
    response = probe.get("/health/")
    assert response.status_code == 302
    assert response["Location"] == f"{VERIFY_URL}?next=%2Fhealth%2F"
    assert Client().get("/health/").content == b"healthy"


def drop_login_state(client):
    """Make the session look signed in before the app was installed."""
    session = client.session
    del session[state.SESSION_KEY]
    session.save()


def test_session_from_before_the_app_is_judged_by_the_policy(client, phone_user):
    client.force_login(phone_user)
    drop_login_state(client)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == f"{VERIFY_URL}?next=%2F"
    assert client.session[state.SESSION_KEY]["state"] == state.PENDING


def test_stale_session_from_before_the_app_is_anonymous_not_an_error(client, phone_user):
    client.force_login(phone_user)
    drop_login_state(client)
    phone_user.set_password("changed-elsewhere-123")
    phone_user.save()
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"
    assert AUTH_SESSION_KEY not in client.session


def test_timed_out_login_on_the_otp_api_answers_json_whatever_the_accept_header(pending, settings):
    settings.INFOBIP_OTP_LOGIN_TIMEOUT = 60
    session = pending.session
    session[state.SESSION_KEY] = {**session[state.SESSION_KEY], "since": time.time() - 61}
    session.save()
    response = pending.get(reverse("infobip_otp:api-status"), headers={"accept": "*/*"})
    assert response.status_code == 401
    assert response.json()["code"] == "login_expired"
