"""E. Enumeration, timing and leakage (T30-T33), attacked through the API and the pages.

Every test plays an attacker (or a failing provider) against the running
stack and checks what comes back: responses, admin error mail, log records
and an error tracker's events.
"""

import logging
import re
import time

import pytest
import responses
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.log import AdminEmailHandler

from infobip_otp.backends import locmem
from infobip_otp.backends.locmem import LocMemBackend
from infobip_otp.client import InfobipClient
from infobip_otp.conf import app_settings
from infobip_otp.exceptions import ProviderError
from infobip_otp.models import OtpChallenge, PhoneDevice, Status
from infobip_otp.testing.pytest_plugin import (  # noqa: F401
    INFOBIP_BACKEND,
    infobip_simulator,
    infobip_simulator_server,
    reset_client_state,
)
from tests.security.conftest import API, MASKED, PASSWORD, PHONE, VERIFY_PAGE, api_post, wrong

pytestmark = pytest.mark.django_db

API_KEY = "4d1f5c2b9e8a7f6e5d4c3b2a19087f6e-77c1e0aa-5b3d-4f1e-9c2a-0d9e8f7a6b5c"
GENERIC = str(ProviderError.default_detail)
PHONE_PAGE = reverse("infobip_otp:phone")
# The forms a full number takes on the wire and in text.
FULL_NUMBER_FORMS = (
    PHONE,
    PHONE[1:],
    "7400123456",
    "07400123456",
    "07400 123456",
    "+44 7400 123456",
)


@pytest.fixture
def sim(infobip_simulator):  # noqa: F811
    return infobip_simulator


def pending(django_user_model, username, phone, **client_kwargs):
    """A client of a new user with ``phone``, past the password step (API)."""
    user = django_user_model.objects.create_user(username, f"{username}@example.com", PASSWORD)
    PhoneDevice.objects.create(user=user, phone_number=phone)
    client = Client(**client_kwargs)
    answer = api_post(client, "login", {"username": username, "password": PASSWORD})
    assert answer.json()["state"] == "pending"
    return client


def pending_with_code(django_user_model, username, phone):
    client = pending(django_user_model, username, phone)
    assert api_post(client, "send").status_code == 202
    return client, locmem.last_pin(phone)


def assert_no_full_number(text, number=PHONE):
    digits = number.lstrip("+")
    national = "0" + digits[2:]
    for form in {number, digits, digits[2:], national}:
        assert form not in text, f"full number {form!r} leaked"


def contains_pin(text, pin):
    """The PIN as a run of exactly its digits (not inside a longer number)."""
    return re.search(rf"(?<!\d){re.escape(pin)}(?!\d)", text) is not None


# --- T30: one status and one body shape for every failure ----------------------------------


@pytest.mark.security("T30")
def test_wrong_expired_locked_missing_and_factor_locked_look_alike(django_user_model, settings):
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 2
    invalid, invalid_pin = pending_with_code(django_user_model, "w", "+447400123401")
    locked, locked_pin = pending_with_code(django_user_model, "l", "+447400123402")
    expired, expired_pin = pending_with_code(django_user_model, "e", "+447400123403")
    missing = pending(django_user_model, "n", "+447400123404")  # never asked for a code
    factor, factor_pin = pending_with_code(django_user_model, "f", "+447400123405")
    PhoneDevice.objects.filter(user__username="f").update(locked_at="2030-01-01T00:00:00Z")
    api_post(locked, "verify", {"pin": wrong(locked_pin)})
    api_post(locked, "verify", {"pin": wrong(locked_pin)})

    answers = {
        "invalid_pin": api_post(invalid, "verify", {"pin": wrong(invalid_pin)}),
        # The right code, even: once locked or expired it is refused like a wrong one.
        "locked": api_post(locked, "verify", {"pin": locked_pin}),
        "no_challenge": api_post(missing, "verify", {"pin": "123456"}),
        "factor_locked": api_post(factor, "verify", {"pin": factor_pin}),
    }
    with time_machine.travel(time.time() + app_settings.PIN_TTL + 1):
        answers["expired"] = api_post(expired, "verify", {"pin": expired_pin})

    for code, answer in answers.items():
        assert answer.status_code == 400, code
        assert answer["Content-Type"] == "application/json", code
        body = answer.json()
        assert body["code"] == code
        assert sorted(body) == ["attempts_left", "code", "detail"], code
        assert [type(body[key]) for key in ("detail", "code", "attempts_left")] == [str, str, int]
        assert "Retry-After" not in answer
        assert body["attempts_left"] == (1 if code == "invalid_pin" else 0)
    header_sets = {code: sorted(answer.headers) for code, answer in answers.items()}
    assert len({tuple(names) for names in header_sets.values()}) == 1, header_sets
    assert not OtpChallenge.objects.filter(status=Status.VERIFIED).exists()


@pytest.mark.security("T30")
def test_the_verify_page_answers_every_failure_the_same_way(django_user_model, settings):
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 2
    pages = {}
    for name in ("w", "l", "e"):
        user = django_user_model.objects.create_user(name, f"{name}@example.com", PASSWORD)
        PhoneDevice.objects.create(user=user, phone_number=f"+44740012341{len(pages)}")
        browser = Client()
        browser.post("/accounts/login/", {"username": name, "password": PASSWORD})
        assert browser.get(VERIFY_PAGE).status_code == 200
        pages[name] = (browser, locmem.last_pin())
    (w, w_pin), (lk, l_pin), (e, e_pin) = pages.values()
    lk.post(VERIFY_PAGE, {"pin": wrong(l_pin)})
    lk.post(VERIFY_PAGE, {"pin": wrong(l_pin)})
    answers = [w.post(VERIFY_PAGE, {"pin": wrong(w_pin)}), lk.post(VERIFY_PAGE, {"pin": l_pin})]
    with time_machine.travel(time.time() + app_settings.PIN_TTL + 1):
        answers.append(e.post(VERIFY_PAGE, {"pin": e_pin}))
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert {tuple(t.name for t in answer.templates[:1]) for answer in answers} == {
        ("infobip_otp/verify.html",)
    }
    errors = [answer.context["form"].errors["pin"] for answer in answers]
    assert all(len(error) == 1 for error in errors)
    for answer in answers:
        assert_no_full_number(answer.content.decode(), answer.context["challenge"].phone_number)


@pytest.mark.security("T30")
def test_every_answer_shows_the_number_masked_only(phone_user):
    client = Client()
    answers = [api_post(client, "login", {"username": "alice", "password": PASSWORD})]
    answers.append(client.get(VERIFY_PAGE))  # the page sends the first code
    answers.append(api_post(client, "send"))  # a resend too early: 429
    answers.append(client.get(API["status"]))
    answers.append(client.get(VERIFY_PAGE))
    answers.append(api_post(client, "verify", {"pin": wrong(locmem.last_pin())}))
    answers.append(client.post(VERIFY_PAGE, {"pin": wrong(locmem.last_pin())}))
    answers.append(api_post(client, "verify", {"pin": locmem.last_pin()}))
    new_number = "+447400999888"
    answers.append(api_post(client, "phone", {"phone_number": new_number}))
    answers.append(client.get(API["status"]))
    answers.append(client.get(PHONE_PAGE))
    assert answers[0].json()["phone"] == MASKED
    assert answers[3].json()["phone"] == MASKED
    assert answers[8].json()["phone"] == "+44*******888"
    assert MASKED in answers[1].content.decode()
    challenges = list(OtpChallenge.objects.all())
    for answer in answers:
        text = answer.content.decode()
        assert_no_full_number(text)
        assert_no_full_number(text, new_number)
        for challenge in challenges:
            assert str(challenge.public_id) not in text
            assert challenge.pin_digest not in text


# --- T31: the structural reason timing is equal -------------------------------------------


@pytest.mark.security("T31")
def test_every_verify_failure_costs_the_same_database_queries(django_user_model, settings):
    """Equal work on every failure path, so their response times cannot be told apart.

    ``benchmarks/timing.py`` measures the times; this asserts the machine-independent
    cause: the same number of database statements whatever the failure (two
    requests each, so a first request that ends a challenge and the later ones
    that find it ended are both covered).
    """
    invalid, invalid_pin = pending_with_code(django_user_model, "w", "+447400123421")
    missing = pending(django_user_model, "n", "+447400123422")
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 1
    locked, locked_pin = pending_with_code(django_user_model, "l", "+447400123423")
    api_post(locked, "verify", {"pin": wrong(locked_pin)})
    expired, expired_pin = pending_with_code(django_user_model, "e", "+447400123424")
    paths = {
        "invalid_pin": (invalid, wrong(invalid_pin)),
        "no_challenge": (missing, "123456"),
        "locked": (locked, locked_pin),
        "expired": (expired, expired_pin),
    }
    counts = {}
    later = time.time() + app_settings.PIN_TTL + 1
    for code, (client, pin) in paths.items():
        for request_number in (1, 2):
            with (
                time_machine.travel(later if code == "expired" else time.time()),
                CaptureQueriesContext(connection) as captured,
            ):
                answer = api_post(client, "verify", {"pin": pin})
            assert answer.json()["code"] == code
            counts[f"{code} #{request_number}"] = len(captured.captured_queries)
    assert len(set(counts.values())) == 1, f"queries per failure path differ: {counts}"


# --- T32: a crash inside verify leaks nothing ----------------------------------------------


class ExplodingBackend(LocMemBackend):
    """Sends like locmem; verification crashes with an unexpected error."""

    def verify(self, challenge, pin):
        raise RuntimeError("backend exploded while checking a code")


STANDARD_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}


class ErrorTrackerTransport(logging.Handler):
    """What an error tracker (sentry-sdk's logging integration) would send, as events.

    Every record becomes an event with its logger, level, message, arguments
    and extra fields; a record with ``exc_info`` carries the exception chain
    (type and value of each link) and the formatted traceback. The events are
    kept here instead of being sent.
    """

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.events = []

    def emit(self, record):
        event = {
            "logger": record.name,
            "level": record.levelname,
            "message": record.getMessage(),
            "args": repr(record.args),
            "extra": {
                key: repr(value)
                for key, value in vars(record).items()
                if key not in STANDARD_RECORD_FIELDS
            },
        }
        if record.exc_info and record.exc_info[1] is not None:
            chain, error = [], record.exc_info[1]
            while error is not None and len(chain) < 10:
                chain.append(
                    {"type": type(error).__name__, "value": str(error), "args": repr(error.args)}
                )
                error = error.__cause__ or error.__context__
            event["exception"] = chain
            event["traceback"] = logging.Formatter().formatException(record.exc_info)
        self.events.append(event)

    def dump(self):
        return "\n".join(repr(event) for event in self.events)


@pytest.fixture
def error_capture(settings, caplog):
    """DEBUG logging everywhere, admin error mail (text and HTML) and an error tracker."""
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.INFOBIP_OTP_API_KEY = API_KEY
    for name in (None, "django", "django.request", "infobip_otp", "infobip_otp.client"):
        caplog.set_level(logging.DEBUG, logger=name)
    tracker = ErrorTrackerTransport()
    html_mail = AdminEmailHandler(include_html=True)
    root, requests_logger = logging.getLogger(), logging.getLogger("django.request")
    root.addHandler(tracker)
    requests_logger.addHandler(html_mail)
    try:
        yield tracker
    finally:
        root.removeHandler(tracker)
        requests_logger.removeHandler(html_mail)


def mail_text(html=None):
    """The admin mails: text parts (``html=False``), HTML parts (True) or both."""
    parts = []
    for message in mail.outbox:
        if html is not True:
            parts += [message.subject, message.body]
            parts += [str(attachment) for attachment in message.attachments]
        if html is not False:
            parts += [content for content, _mimetype in getattr(message, "alternatives", [])]
    return "\n".join(parts)


def crash_verify_through(channel, client, pin):
    if channel == "api":
        return api_post(client, "verify", {"pin": pin})
    return client.post(VERIFY_PAGE, {"pin": pin})


@pytest.mark.security("T32")
@pytest.mark.parametrize("channel", ["api", "page"])
def test_a_crash_inside_verify_leaks_no_pin_key_or_number(
    phone_user, settings, error_capture, channel
):
    settings.INFOBIP_OTP_BACKEND = f"{__name__}.ExplodingBackend"
    client = Client(raise_request_exception=False)
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert client.get(VERIFY_PAGE).status_code == 200
    pin = locmem.last_pin()
    challenge = OtpChallenge.objects.get()

    answer = crash_verify_through(channel, client, pin)

    assert answer.status_code == 500
    assert client.get("/").status_code == 302  # still pending: a crash never verifies
    challenge.refresh_from_db()
    assert (challenge.status, challenge.verified_at) == (Status.PENDING, None)
    # The failure was captured everywhere it is meant to be.
    assert len(mail.outbox) >= 2, "the admin error mails were not sent"
    assert "RuntimeError" in mail_text()
    assert any("RuntimeError" in repr(event.get("exception")) for event in error_capture.events)
    captured = {
        "response": answer.content.decode(errors="replace"),
        "admin mail (text)": mail_text(html=False),
        "admin mail (HTML report)": mail_text(html=True),
        "error tracker": error_capture.dump(),
    }
    for where, text in captured.items():
        assert not contains_pin(text, pin), f"the PIN reached the {where}"
        assert API_KEY not in text, f"the API key reached the {where}"
        assert challenge.pin_digest not in text, f"the PIN digest reached the {where}"
        for form in FULL_NUMBER_FORMS:
            assert form not in text, f"the full number ({form}) reached the {where}"


@pytest.mark.security("T32")
def test_a_crash_inside_the_infobip_client_leaks_no_pin_key_or_number(
    phone_user,
    sim,
    settings,
    error_capture,
    monkeypatch,
):
    def broken_parser(data):
        raise KeyError("verified")

    settings.INFOBIP_OTP_API_KEY = sim.api_key  # error_capture set another
    client = Client(raise_request_exception=False)
    api_post(client, "login", {"username": "alice", "password": PASSWORD})
    assert api_post(client, "send").status_code == 202
    pin = sim.last_pin(PHONE)
    challenge = OtpChallenge.objects.get()
    monkeypatch.setattr("infobip_otp.client._parse_verification", broken_parser)

    answer = api_post(client, "verify", {"pin": pin})

    assert answer.status_code == 500
    assert sim.request_count("verify") == 1
    assert "KeyError" in mail_text()
    captured = {
        "response": answer.content.decode(errors="replace"),
        "admin mail (text)": mail_text(html=False),
        "admin mail (HTML report)": mail_text(html=True),
        "error tracker": error_capture.dump(),
    }
    for where, text in captured.items():
        assert not contains_pin(text, pin), f"the PIN reached the {where}"
        assert sim.api_key not in text, f"the API key reached the {where}"
        if where != "error tracker":  # urllib3's own DEBUG lines name request paths
            assert challenge.provider_pin_id not in text, f"the provider pinId reached the {where}"
        for form in FULL_NUMBER_FORMS:
            assert form not in text, f"the full number ({form}) reached the {where}"


@pytest.mark.security("T32")
def test_models_clients_and_errors_print_no_secret(phone_user):
    challenge = OtpChallenge.objects.create(
        user=phone_user,
        session_hash="f" * 64,
        phone_number=PHONE,
        purpose="login",
        max_attempts=5,
        expires_at="2030-01-01T00:00:00Z",
        provider_pin_id="9C817C6F8AF3D48F9FE553282AFA2B67",
        pin_digest="d" * 64,
    )
    device = PhoneDevice.objects.get(user=phone_user)
    error = ProviderError(provider_text=f"number {PHONE} key {API_KEY}", provider_code="X")
    printed = [str(challenge), repr(challenge), str(device), repr(device), str(error), repr(error)]
    printed += [repr(InfobipClient(api_key=API_KEY, base_url="https://x.example"))]
    printed += [repr(error.as_dict())]
    assert MASKED in str(challenge) and MASKED in repr(device)
    for text in printed:
        for secret in (PHONE, PHONE[1:], API_KEY, challenge.provider_pin_id, challenge.pin_digest):
            assert secret not in text, text
        assert "f" * 64 not in text


# --- T33: what the provider says stays on the server, redacted -----------------------------

PROVIDER_TEXT = (
    f"Destination 447400123456 rejected for account key {API_KEY}; "
    "last PIN 482915 was already used. Contact support@infobip.example"
)


@pytest.fixture
def provider_mock(settings):
    """The Infobip backend against a mocked HTTPS API (no simulator: it cannot echo text)."""
    settings.INFOBIP_OTP_BACKEND = INFOBIP_BACKEND
    settings.INFOBIP_OTP_BASE_URL = "https://xyz.api.infobip.test"
    settings.INFOBIP_OTP_API_KEY = API_KEY
    settings.INFOBIP_OTP_APPLICATION_ID = "APP"
    settings.INFOBIP_OTP_MESSAGE_ID = "MSG"
    reset_client_state()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
    reset_client_state()


def provider_error(status, text=PROVIDER_TEXT):
    return {
        "status": status,
        "json": {
            "requestError": {
                "serviceException": {
                    "messageId": "BAD_REQUEST",
                    "text": text,
                    "validationErrors": {"to": [text]},
                }
            }
        },
    }


@pytest.mark.security("T33")
@pytest.mark.parametrize("status", [400, 401, 403, 500, 503])
def test_provider_error_text_on_send_reaches_only_the_log_redacted(
    phone_user, provider_mock, caplog, status
):
    caplog.set_level(logging.DEBUG)
    provider_mock.add(
        responses.POST, "https://xyz.api.infobip.test/2fa/2/pin", **provider_error(status)
    )
    client, browser = Client(), Client()
    api_post(client, "login", {"username": "alice", "password": PASSWORD})
    browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    answer = api_post(client, "send")
    page = browser.get(VERIFY_PAGE)  # the page's first send fails the same way

    assert answer.status_code == 503
    assert answer.json() == {"detail": GENERIC, "code": "provider_unavailable"}
    assert page.status_code == 200
    assert GENERIC in page.content.decode()
    assert len(provider_mock.calls) == 2  # one each, never retried
    for text in (answer.content.decode(), page.content.decode()):
        for fragment in (
            "447400123456",
            API_KEY,
            "482915",
            "Destination",
            "support@",
            "BAD_REQUEST",
        ):
            assert fragment not in text
    client_records = [r for r in caplog.records if r.name == "infobip_otp.client"]
    assert client_records, "the provider's error was not logged"
    logged = "\n".join(record.getMessage() + repr(vars(record)) for record in caplog.records)
    assert "Destination [digits] rejected for account key [key]" in logged
    for secret in ("447400123456", API_KEY, "482915"):
        assert secret not in logged


@pytest.mark.security("T33")
def test_provider_error_text_on_verify_reaches_only_the_log_redacted(
    phone_user, provider_mock, caplog
):
    caplog.set_level(logging.DEBUG)
    provider_mock.add(
        responses.POST,
        "https://xyz.api.infobip.test/2fa/2/pin",
        json={
            "pinId": "0A1B2C3D4E5F60718293A4B5C6D7E8F9",
            "to": "447400123456",
            "smsStatus": "MESSAGE_SENT",
        },
    )
    pin_echo = (
        "Verification of PIN 604217 for 447400123456 failed, "
        "internal id 0A1B2C3D4E5F60718293A4B5C6D7E8F9"
    )
    provider_mock.add(
        responses.POST,
        "https://xyz.api.infobip.test/2fa/2/pin/0A1B2C3D4E5F60718293A4B5C6D7E8F9/verify",
        **provider_error(500, pin_echo),
    )
    client = Client()
    api_post(client, "login", {"username": "alice", "password": PASSWORD})
    assert api_post(client, "send").status_code == 202

    answer = api_post(client, "verify", {"pin": "604217"})

    assert answer.status_code == 503
    assert answer.json() == {"detail": GENERIC, "code": "provider_unavailable"}
    logged = "\n".join(record.getMessage() + repr(vars(record)) for record in caplog.records)
    assert "Verification of PIN [digits] for [digits] failed" in logged
    for secret in ("604217", "447400123456", API_KEY, "0A1B2C3D4E5F60718293A4B5C6D7E8F9"):
        assert secret not in answer.content.decode()
    for secret in ("604217", "447400123456", API_KEY):
        assert secret not in logged


@pytest.mark.security("T33")
def test_a_real_provider_refusal_is_generic_to_the_user(phone_user, sim, settings, caplog):
    caplog.set_level(logging.DEBUG, logger="infobip_otp.client")
    settings.INFOBIP_OTP_API_KEY = "revoked-key-0123456789abcdef0123456789abcdef"
    client = Client()
    api_post(client, "login", {"username": "alice", "password": PASSWORD})

    answer = api_post(client, "send")

    assert answer.status_code == 503
    assert answer.json() == {"detail": GENERIC, "code": "provider_unavailable"}
    assert "Invalid login details" not in answer.content.decode()
    assert sim.request_count("send") == 1
    [record] = [r for r in caplog.records if r.name == "infobip_otp.client"]
    assert record.levelno == logging.ERROR  # an auth failure is an operator's problem
    assert "Invalid login details" in record.getMessage()
    assert "revoked-key" not in record.getMessage()
