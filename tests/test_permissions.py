"""Per-view checks: ``IsOtpVerified``, ``otp_required`` and ``OtpRequiredMixin``.

The middleware is taken out here, so each refusal comes from the view's own
check, as in a project that relies on explicit checks or on token clients.
"""

import pytest
from django.conf import settings as django_settings
from django.http import HttpResponse
from django.views import View
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.response import Response
from rest_framework.views import APIView

from infobip_otp import state
from infobip_otp.backends import locmem
from infobip_otp.models import PhoneDevice
from infobip_otp.permissions import IsOtpVerified, OtpRequiredMixin, otp_required

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls_permissions")]

PHONE = "+447400123456"
OTP_REQUIRED_BODY = {"detail": "Enter the code we sent you to continue.", "code": "otp_required"}
JSON = {"accept": "application/json"}


class SecretApi(APIView):
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsOtpVerified]

    def get(self, request):
        return Response({"secret": f"api of {request.user.username}"})


@otp_required
def decorated_view(request):
    return HttpResponse(f"decorated page of {request.user.username}")


class MixinView(OtpRequiredMixin, View):
    def get(self, request):
        return HttpResponse(f"mixin page of {request.user.username}")


HTML_VIEWS = ["/decorated/", "/mixin/"]
ALL_VIEWS = ["/api/secret/", *HTML_VIEWS]


@pytest.fixture(autouse=True)
def without_middleware(settings):
    settings.MIDDLEWARE = [
        name
        for name in django_settings.MIDDLEWARE
        if name != "infobip_otp.middleware.OtpRequiredMiddleware"
    ]


@pytest.fixture
def phone_user(user):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    return user


@pytest.fixture
def pending(client, phone_user):
    client.force_login(phone_user)
    assert client.session[state.SESSION_KEY]["state"] == state.PENDING
    return client


@pytest.fixture
def verified(pending):
    pending.get("/otp/verify/")
    pending.post("/otp/verify/", {"pin": locmem.last_pin()})
    assert pending.session[state.SESSION_KEY]["state"] == state.VERIFIED
    return pending


def drop_login_state(client):
    """A session signed in before the app was installed: no OTP state at all."""
    session = client.session
    session.pop(state.SESSION_KEY, None)
    session.save()


def test_anonymous_api_client_gets_401(client):
    response = client.get("/api/secret/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert b"secret" not in response.content


@pytest.mark.parametrize("url", HTML_VIEWS)
def test_anonymous_browser_is_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url.replace('/', '%2F')}"


def test_pending_session_is_refused_by_the_api(pending):
    response = pending.get("/api/secret/")
    assert response.status_code == 401
    assert response.json() == OTP_REQUIRED_BODY


@pytest.mark.parametrize("url", HTML_VIEWS)
def test_pending_browser_is_sent_to_the_code_page(pending, url):
    response = pending.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/otp/verify/?next={url.replace('/', '%2F')}"


@pytest.mark.parametrize("url", HTML_VIEWS)
def test_pending_json_client_gets_401_from_the_html_views(pending, url):
    response = pending.get(url, headers=JSON)
    assert response.status_code == 401
    assert response.json() == OTP_REQUIRED_BODY


def test_enrolling_session_is_refused(client, user, settings):
    settings.INFOBIP_OTP_REQUIRED = "everyone"
    client.force_login(user)
    assert client.session[state.SESSION_KEY]["state"] == state.ENROLL
    for url in ALL_VIEWS:
        assert client.get(url, headers=JSON).status_code == 401


@pytest.mark.parametrize("url", ALL_VIEWS)
def test_verified_session_is_let_through(verified, url):
    response = verified.get(url)
    assert response.status_code == 200
    assert b"of alice" in response.content


@pytest.mark.parametrize("url", ALL_VIEWS)
def test_user_the_policy_exempts_is_let_through_without_session_state(client, user, url):
    client.force_login(user)
    drop_login_state(client)
    response = client.get(url)
    assert response.status_code == 200
    assert b"of alice" in response.content


@pytest.mark.parametrize("url", ALL_VIEWS)
def test_user_the_policy_covers_is_refused_without_session_state(client, phone_user, url):
    client.force_login(phone_user)
    drop_login_state(client)
    response = client.get(url, headers=JSON)
    assert response.status_code == 401
    assert b"of alice" not in response.content


def test_token_client_whose_policy_asks_a_code_is_refused(client, phone_user):
    token = Token.objects.create(user=phone_user)
    response = client.get("/api/secret/", headers={"authorization": f"Token {token.key}"})
    assert response.status_code == 401
    assert response.json() == OTP_REQUIRED_BODY


def test_token_client_whose_policy_asks_no_code_is_let_through(client, user):
    token = Token.objects.create(user=user)
    response = client.get("/api/secret/", headers={"authorization": f"Token {token.key}"})
    assert response.status_code == 200
    assert response.json() == {"secret": "api of alice"}


def test_verified_session_of_another_user_does_not_cover_a_token(verified, other_user):
    PhoneDevice.objects.create(user=other_user, phone_number="+447400999888")
    token = Token.objects.create(user=other_user)
    response = verified.get("/api/secret/", headers={"authorization": f"Token {token.key}"})
    assert response.status_code == 401
    assert b"api of" not in response.content
