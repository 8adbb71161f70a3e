"""The REST flow: status, login, send, verify, phone; CSRF, tokens and error shapes."""

import json

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from infobip_otp import state
from infobip_otp.backends import locmem
from infobip_otp.models import OtpChallenge, PhoneDevice, Status

pytestmark = pytest.mark.django_db

PHONE = "+447400123456"
MASKED = "+44*******456"
PASSWORD = "pw-alice-123"
URL = {
    name: reverse(f"infobip_otp:api-{name}")
    for name in ("status", "login", "send", "verify", "phone")
}


@pytest.fixture
def phone_user(user):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    return user


@pytest.fixture
def api():
    return Client()


def post(client, name, body=None, **extra):
    return client.post(URL[name], json.dumps(body or {}), content_type="application/json", **extra)


def api_login(client, username="alice", password=PASSWORD):
    return post(client, "login", {"username": username, "password": password})


def wrong(pin):
    return "".join(str((int(d) + 1) % 10) for d in pin)


def assert_no_secrets(response):
    text = response.content.decode()
    assert PHONE not in text and PHONE[1:] not in text
    for challenge in OtpChallenge.objects.all():
        if challenge.provider_pin_id:
            assert challenge.provider_pin_id not in text
        assert str(challenge.public_id) not in text
        assert challenge.pin_digest not in text or not challenge.pin_digest


def test_status_of_an_anonymous_client(api):
    response = api.get(URL["status"])
    assert response.status_code == 200
    assert response.json() == {"state": "anonymous", "phone": None, "challenge": None}
    assert "csrftoken" in response.cookies


def test_full_login_flow(api, phone_user):
    response = api_login(api)
    assert response.status_code == 200
    assert response.json() == {"state": "pending", "phone": MASKED}
    sent = post(api, "send")
    assert sent.status_code == 202
    body = sent.json()
    assert body["phone"] == MASKED
    assert 0 < body["expires_in"] <= 300
    assert body["attempts_left"] == 5
    assert body["resend_in"] == 30
    status = api.get(URL["status"]).json()
    assert status["state"] == "pending"
    assert status["challenge"]["purpose"] == "login"
    assert status["challenge"]["attempts_left"] == 5
    verified = post(api, "verify", {"pin": locmem.last_pin()})
    assert verified.status_code == 200
    assert verified.json() == {"state": "verified"}
    assert api.get(URL["status"]).json()["state"] == "verified"
    for response in (sent, verified):
        assert_no_secrets(response)


def test_login_with_wrong_password_and_unknown_user_look_the_same(api, phone_user):
    wrong_password = api_login(api, password="nope")
    unknown = api_login(api, username="mallory", password="nope")
    assert wrong_password.status_code == unknown.status_code == 400
    assert (
        wrong_password.json()
        == unknown.json()
        == {
            "detail": "The username or password is not correct.",
            "code": "invalid_credentials",
        }
    )


def test_login_of_a_user_without_phone_is_not_required(api, user):
    assert api_login(api).json() == {"state": "not_required", "phone": None}


def test_pending_api_client_is_refused_elsewhere(api, phone_user):
    api_login(api)
    response = api.get("/", headers={"accept": "application/json"})
    assert response.status_code == 401
    assert response.json()["code"] == "otp_required"


def test_wrong_expired_locked_and_missing_challenge_share_one_shape(api, phone_user, settings):
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 2
    api_login(api)
    no_challenge = post(api, "verify", {"pin": "123456"})
    post(api, "send")
    pin = locmem.last_pin()
    wrong_1 = post(api, "verify", {"pin": wrong(pin)})
    locked = post(api, "verify", {"pin": wrong(pin)})
    again = post(api, "verify", {"pin": pin})
    responses = [no_challenge, wrong_1, locked, again]
    assert [r.status_code for r in responses] == [400, 400, 400, 400]
    assert [r.json()["code"] for r in responses] == [
        "no_challenge",
        "invalid_pin",
        "locked",
        "locked",
    ]
    assert {tuple(sorted(r.json())) for r in responses} == {("attempts_left", "code", "detail")}
    assert wrong_1.json()["attempts_left"] == 1


def test_malformed_input_gives_field_errors(api, phone_user):
    api_login(api)
    for body in ({}, {"pin": "12"}, {"pin": "abcdef"}, {"pin": ["123456"]}, {"pin": None}):
        response = post(api, "verify", body)
        assert response.status_code == 400, body
        data = response.json()
        assert data["code"] == "invalid"
        assert list(data["fields"]) == ["pin"]
    not_json = api.post(URL["verify"], "{nope", content_type="application/json")
    assert not_json.status_code == 400
    assert not_json.json()["code"] == "parse_error"
    a_list = api.post(URL["verify"], "[1, 2]", content_type="application/json")
    assert a_list.status_code == 400
    assert OtpChallenge.objects.filter(attempts__gt=0).count() == 0


def test_session_clients_need_csrf(phone_user):
    client = Client(enforce_csrf_checks=True)
    refused = api_login(client)
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    token = client.get(URL["status"]).cookies["csrftoken"].value
    assert api_login(client, **{}).status_code == 403
    ok = post(client, "login", {"username": "alice", "password": PASSWORD}, HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200
    token = client.cookies["csrftoken"].value
    no_csrf = post(client, "send")
    assert no_csrf.status_code == 403
    assert len(locmem.outbox) == 0
    assert post(client, "send", HTTP_X_CSRFTOKEN=token).status_code == 202
    assert len(locmem.outbox) == 1


def test_token_clients_verify_their_token(api, phone_user, django_user_model):
    token = Token.objects.create(user=phone_user)
    auth = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    assert api.get(URL["status"], **auth).json()["state"] == "pending"
    sent = post(api, "send", **auth)
    assert sent.status_code == 202
    challenge = OtpChallenge.objects.get()
    assert challenge.user == phone_user
    bad = post(api, "verify", {"pin": wrong(locmem.last_pin())}, **auth)
    assert bad.json()["code"] == "invalid_pin"
    ok = post(api, "verify", {"pin": locmem.last_pin()}, **auth)
    assert ok.json() == {"state": "verified"}
    assert api.get(URL["status"], **auth).json()["state"] == "verified"
    other = Token.objects.create(
        user=PhoneDevice.objects.get().user.__class__.objects.create_user("carol")
    )
    assert api.get(URL["status"], HTTP_AUTHORIZATION=f"Token {other.key}").json()["state"] == (
        "not_required"
    )


def test_a_second_token_of_the_same_user_is_not_verified(api, phone_user, django_user_model):
    first = Token.objects.create(user=phone_user)
    post(api, "send", HTTP_AUTHORIZATION=f"Token {first.key}")
    post(api, "verify", {"pin": locmem.last_pin()}, HTTP_AUTHORIZATION=f"Token {first.key}")
    first.delete()
    second = Token.objects.create(user=phone_user)
    status = api.get(URL["status"], HTTP_AUTHORIZATION=f"Token {second.key}").json()
    assert status["state"] == "pending"


def test_resend_cooldown_answers_429_with_retry_after(api, phone_user):
    api_login(api)
    post(api, "send")
    again = post(api, "send")
    assert again.status_code == 429
    assert again.json()["code"] == "rate_limited"
    assert 0 < int(again["Retry-After"]) <= 30
    assert len(locmem.outbox) == 1


def test_enrolment_through_the_api(api, user, settings):
    settings.INFOBIP_OTP_REQUIRED = "everyone"
    assert api_login(api).json() == {"state": "enroll", "phone": None}
    assert post(api, "verify", {"pin": "123456"}).json()["code"] == "no_challenge"
    sent = post(api, "phone", {"phone_number": "07400 123456"})
    assert sent.status_code == 202
    assert sent.json()["phone"] == MASKED
    status = api.get(URL["status"]).json()
    assert status["state"] == "enroll"
    assert status["challenge"]["purpose"] == "enroll"
    verified = post(api, "verify", {"pin": locmem.last_pin()})
    assert verified.json() == {"state": "verified", "phone": MASKED}
    assert PhoneDevice.objects.get(user=user).phone_number == PHONE


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("not a number", "invalid_phone"),
        ("+19005550123", "number_type_not_allowed"),
        ("+442071234567", "number_type_not_allowed"),
        ("+385917284759", "region_not_allowed"),
    ],
)
def test_refused_numbers_cost_no_sms(api, user, settings, number, code):
    settings.INFOBIP_OTP_ALLOWED_REGIONS = ["GB", "US"]
    api_login(api)
    response = post(api, "phone", {"phone_number": number})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code
    assert list(body["fields"]) == ["phone_number"]
    assert locmem.outbox == []
    assert OtpChallenge.objects.count() == 0


def test_changing_a_phone_needs_a_verified_session(api, phone_user):
    api_login(api)
    refused = post(api, "phone", {"phone_number": "+447400999888"})
    assert refused.status_code == 401
    assert refused.json()["code"] == "otp_required"
    post(api, "send")
    post(api, "verify", {"pin": locmem.last_pin()})
    sent = post(api, "phone", {"phone_number": "+447400999888"})
    assert sent.status_code == 202
    assert locmem.outbox[-1].to == "+447400999888"
    confirmed = post(api, "verify", {"pin": locmem.last_pin()})
    assert confirmed.json() == {"state": "verified", "phone": "+44*******888"}
    assert PhoneDevice.objects.get().phone_number == "+447400999888"


def test_anonymous_phone_verification_is_off_by_default(api):
    response = post(api, "phone", {"phone_number": PHONE})
    assert response.status_code == 401
    assert locmem.outbox == []


def test_anonymous_phone_verification_keeps_the_number_in_the_session(api, settings):
    settings.INFOBIP_OTP_ANONYMOUS_PHONE_VERIFICATION = True
    assert post(api, "phone", {"phone_number": PHONE}).status_code == 202
    challenge = OtpChallenge.objects.get()
    assert challenge.user is None
    verified = post(api, "verify", {"pin": locmem.last_pin()})
    assert verified.json() == {"state": "anonymous", "phone": MASKED}
    assert api.session["_infobip_otp_phone"] == PHONE
    assert api.get(URL["status"]).json()["phone"] == MASKED


def test_verified_login_cannot_verify_again(api, phone_user):
    api_login(api)
    post(api, "send")
    pin = locmem.last_pin()
    post(api, "verify", {"pin": pin})
    again = post(api, "verify", {"pin": pin})
    assert again.status_code == 400
    assert again.json()["code"] == "no_challenge"
    assert OtpChallenge.objects.get().status == Status.VERIFIED


def test_login_step_state_is_the_sessions(api, phone_user):
    api_login(api)
    assert api.session[state.SESSION_KEY]["state"] == state.PENDING
