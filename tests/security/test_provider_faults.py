"""G. Provider faults (T41-T48), end to end: API and pages -> InfobipBackend -> simulator.

Faults are injected into the local Infobip simulator; ``sim.request_count``
says how many requests reached "Infobip". Time bounds are derived from the
configured timeout (read timeout + 2 s of slack): they are bounds, not speed
claims. Throughout, the login must stay pending: a fault never verifies.
"""

import ast
import io
import logging
import re
import socket
import time
import tokenize
from pathlib import Path

import pytest
import requests
import responses
import time_machine
from django.test import Client

import infobip_otp
from infobip_otp.conf import DEFAULTS, app_settings
from infobip_otp.exceptions import ProviderError
from infobip_otp.models import OtpChallenge, PhoneDevice, Status
from infobip_otp.testing.pytest_plugin import (  # noqa: F401
    TEST_TIMEOUT,
    infobip_simulator,
    infobip_simulator_server,
)
from infobip_otp.trusted_devices import COOKIE_NAME
from tests.security.conftest import API, PASSWORD, PHONE, VERIFY_PAGE, api_post

pytestmark = pytest.mark.django_db

BOUND = TEST_TIMEOUT[1] + 2.0
GENERIC = str(ProviderError.default_detail)


@pytest.fixture
def sim(infobip_simulator):  # noqa: F811
    return infobip_simulator


def login(username="alice", ip="127.0.0.1"):
    client = Client(REMOTE_ADDR=ip)
    assert (
        api_post(client, "login", {"username": username, "password": PASSWORD}).status_code == 200
    )
    return client


def timed_post(client, name, body=None):
    began = time.monotonic()
    answer = api_post(client, name, body)
    return answer, time.monotonic() - began


def assert_unavailable(answer, code="provider_unavailable"):
    assert answer.status_code == 503, answer.content
    assert answer.json() == {"detail": GENERIC, "code": code}
    assert int(answer["Retry-After"]) >= 1


def assert_pending(client):
    assert client.get(API["status"]).json()["state"] == "pending"
    assert client.get("/", headers={"accept": "application/json"}).status_code == 401


def other_pin(pin):
    return "".join(str((int(d) + 1) % 10) for d in pin)


# --- T41: a hanging send --------------------------------------------------------------------


@pytest.mark.security("T41")
def test_a_hanging_send_answers_503_in_bounded_time_with_one_call(sim, phone_user):
    sim.set_fault("send", "hang", seconds=5)
    client = login()

    answer, elapsed = timed_post(client, "send")

    assert elapsed < BOUND
    assert_unavailable(answer)
    assert sim.request_count("send") == 1
    assert OtpChallenge.objects.get().status == Status.FAILED
    assert_pending(client)


@pytest.mark.security("T41")
def test_a_hanging_send_behind_the_code_page_shows_an_error_in_bounded_time(sim, phone_user):
    sim.set_fault("send", "hang", seconds=5)
    browser = Client()
    browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    began = time.monotonic()
    page = browser.get(VERIFY_PAGE)
    elapsed = time.monotonic() - began

    assert elapsed < BOUND
    assert page.status_code == 200
    assert GENERIC in page.content.decode()
    assert sim.request_count("send") == 1
    assert browser.get("/").status_code == 302  # still pending


# --- T42: 5xx or reset after the request was written ---------------------------------------


@pytest.mark.security("T42")
@pytest.mark.parametrize("kind", ["500", "503", "reset"])
def test_a_send_failing_after_it_was_written_is_not_retried(sim, phone_user, kind):
    sim.set_fault("send", kind)
    client = login()

    answer, elapsed = timed_post(client, "send")

    assert_unavailable(answer)
    assert elapsed < BOUND
    assert sim.request_count("send") == 1
    assert OtpChallenge.objects.get().status == Status.FAILED
    assert_pending(client)


@pytest.mark.security("T42")
def test_user_resends_after_failed_sends_count_against_the_limits(sim, phone_user, settings):
    settings.INFOBIP_OTP_BREAKER_THRESHOLD = 100  # keep the breaker out of this test
    settings.INFOBIP_OTP_RATES = {"send_session": "3/h"}
    sim.set_fault("send", "500")
    client = login()

    answers = [api_post(client, "send") for _ in range(5)]

    assert [answer.status_code for answer in answers] == [503, 503, 503, 429, 429]
    assert sim.request_count("send") == 3  # one per counted click, none by the app itself
    # Each click started a new challenge; the older failed ones were cancelled.
    assert sorted(OtpChallenge.objects.values_list("status", flat=True)) == [
        Status.CANCELLED,
        Status.CANCELLED,
        Status.FAILED,
    ]
    assert_pending(client)


@pytest.mark.security("T42")
def test_loading_the_code_page_after_a_failed_send_does_not_send_again(sim, phone_user):
    """The SMS of a failed send may still have gone out: only a click may try again."""
    sim.set_fault("send", "reset", times=1)
    client = login()
    assert_unavailable(api_post(client, "send"))

    for _ in range(3):
        assert client.get(VERIFY_PAGE).status_code == 200

    assert sim.request_count("send") == 1


# --- T43: nothing was sent (refused connection, DNS failure) -------------------------------


def count_http_attempts(monkeypatch):
    attempts = []
    real_send = requests.adapters.HTTPAdapter.send

    def counting_send(self, request, **kwargs):
        attempts.append(request.url)
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", counting_send)
    return attempts


@pytest.mark.security("T43")
def test_a_refused_connection_is_retried_at_most_once(sim, phone_user, settings, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.INFOBIP_OTP_BASE_URL = f"http://127.0.0.1:{probe.getsockname()[1]}"
    attempts = count_http_attempts(monkeypatch)
    client = login()

    answer, elapsed = timed_post(client, "send")

    assert_unavailable(answer)
    assert elapsed < BOUND
    assert len(attempts) == 2  # the first try and one immediate retry, never more
    assert OtpChallenge.objects.get().status == Status.FAILED
    assert_pending(client)


@pytest.mark.security("T43")
def test_a_dns_failure_is_retried_at_most_once(sim, phone_user, settings, monkeypatch):
    host = "api.infobip-dns-failure.invalid"
    settings.INFOBIP_OTP_BASE_URL = f"https://{host}"
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def failing_getaddrinfo(name, *args, **kwargs):
        if name == host:
            lookups.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", failing_getaddrinfo)
    attempts = count_http_attempts(monkeypatch)
    client = login()

    answer, elapsed = timed_post(client, "send")

    assert_unavailable(answer)
    assert elapsed < BOUND
    assert len(attempts) == 2 and len(lookups) == 2
    assert sim.request_count() == 0
    assert_pending(client)


# --- T44: verify times out or fails ---------------------------------------------------------


@pytest.mark.security("T44")
@pytest.mark.parametrize(
    ("kind", "params"), [("hang", {"seconds": 3}), ("500", {}), ("503", {}), ("reset", {})]
)
def test_a_failing_verify_never_verifies_and_costs_no_attempt(sim, phone_user, kind, params):
    client = login()
    assert api_post(client, "send").status_code == 202
    pin = sim.last_pin(PHONE)
    sim.set_fault("verify", kind, times=1, **params)

    answer, elapsed = timed_post(client, "verify", {"pin": pin})  # the right code, even

    assert elapsed < BOUND
    assert_unavailable(answer)
    assert sim.request_count("verify") == 1
    assert_pending(client)
    challenge = OtpChallenge.objects.get()
    assert (challenge.status, challenge.attempts, challenge.verified_at) == (
        Status.PENDING,
        0,
        None,
    )
    assert PhoneDevice.objects.get().failure_count == 0  # not the user's failure
    status = client.get(API["status"]).json()["challenge"]
    assert status["attempts_left"] == app_settings.MAX_ATTEMPTS
    # The provider is back: the next attempt is allowed and succeeds.
    assert api_post(client, "verify", {"pin": pin}).json() == {"state": "verified"}
    assert sim.request_count("verify") == 2


# --- T45: malformed or contradictory verify answers -----------------------------------------


@pytest.mark.security("T45")
@pytest.mark.parametrize(
    ("kind", "logged_code"),
    [("malformed", "MALFORMED_RESPONSE"), ("contradictory", "CONTRADICTORY")],
)
def test_a_garbled_verify_answer_fails_closed_and_is_logged(
    sim, phone_user, caplog, kind, logged_code
):
    caplog.set_level(logging.WARNING, logger="infobip_otp")
    client = login()
    assert api_post(client, "send").status_code == 202
    pin = sim.last_pin(PHONE)
    sim.set_fault("verify", kind, times=1)

    answer = api_post(client, "verify", {"pin": pin})

    assert_unavailable(answer)
    assert_pending(client)
    assert OtpChallenge.objects.get().attempts == 0
    codes = [getattr(record, "provider_code", None) for record in caplog.records]
    assert logged_code in codes
    assert api_post(client, "verify", {"pin": pin}).json() == {"state": "verified"}


@pytest.mark.security("T45")
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            lambda pin_id: {"pinId": pin_id, "msisdn": "447400123456", "attemptsRemaining": 4},
            id="verified-missing",
        ),
        pytest.param(
            lambda pin_id: {"pinId": pin_id, "verified": True, "pinError": "WRONG_PIN"},
            id="verified-and-pinError",
        ),
        pytest.param(
            lambda pin_id: {"pinId": "F" * 32, "verified": True, "attemptsRemaining": 0},
            id="other-pinId",
        ),
        pytest.param(lambda pin_id: {"pinId": pin_id, "verified": "true"}, id="verified-as-string"),
    ],
)
def test_each_contradiction_in_a_verify_answer_fails_closed(sim, phone_user, caplog, answer):
    """The simulator answers all contradictions at once; each one alone must fail closed too."""
    caplog.set_level(logging.WARNING, logger="infobip_otp")
    client = login()
    assert api_post(client, "send").status_code == 202
    pin = sim.last_pin(PHONE)
    pin_id = OtpChallenge.objects.get().provider_pin_id
    with responses.RequestsMock() as mock:
        mock.add_passthru(sim.url)
        mock.add(responses.POST, re.compile(r".*/2fa/2/pin/[^/]+/verify$"), json=answer(pin_id))
        refused = api_post(client, "verify", {"pin": pin})
        assert len(mock.calls) == 1
    assert_unavailable(refused)
    assert_pending(client)
    assert OtpChallenge.objects.get().attempts == 0
    assert any(getattr(record, "provider_code", "") for record in caplog.records)


# --- T46: Infobip says 429 ------------------------------------------------------------------


@pytest.mark.security("T46")
def test_a_provider_429_on_send_is_passed_on_with_retry_after_and_not_retried(sim, phone_user):
    sim.set_fault("send", "429", retry_after=7)
    client = login()

    answer = api_post(client, "send")

    assert answer.status_code == 429
    assert answer.json() == {"detail": GENERIC, "code": "rate_limited"}
    assert answer["Retry-After"] == "7"
    assert sim.request_count("send") == 1
    assert_pending(client)


@pytest.mark.security("T46")
def test_a_provider_429_on_verify_costs_no_attempt_and_is_not_retried(sim, phone_user):
    client = login()
    assert api_post(client, "send").status_code == 202
    pin = sim.last_pin(PHONE)
    sim.set_fault("verify", "429", retry_after=11, times=1)

    answer = api_post(client, "verify", {"pin": pin})

    assert answer.status_code == 429
    assert answer["Retry-After"] == "11"
    assert sim.request_count("verify") == 1
    assert OtpChallenge.objects.get().attempts == 0
    assert_pending(client)


@pytest.mark.security("T46")
def test_provider_429s_do_not_open_the_breaker_for_everyone(sim, django_user_model, settings):
    threshold = settings.INFOBIP_OTP_BREAKER_THRESHOLD = 3
    sim.set_fault("send", "429", retry_after=5, times=threshold + 2)
    for i in range(threshold + 2):
        user = django_user_model.objects.create_user(f"u{i}", f"u{i}@example.com", PASSWORD)
        PhoneDevice.objects.create(user=user, phone_number=f"+44740012360{i}")
        assert api_post(login(f"u{i}"), "send").status_code == 429
    user = django_user_model.objects.create_user("fine", "fine@example.com", PASSWORD)
    PhoneDevice.objects.create(user=user, phone_number="+447400123699")

    assert api_post(login("fine"), "send").status_code == 202
    assert sim.request_count("send") == threshold + 3


# --- T47: the circuit breaker ---------------------------------------------------------------


@pytest.mark.security("T47")
def test_the_breaker_opens_fails_fast_probes_once_and_never_verifies(
    sim, django_user_model, settings
):
    threshold = settings.INFOBIP_OTP_BREAKER_THRESHOLD = 3
    cooldown = settings.INFOBIP_OTP_BREAKER_COOLDOWN = 30
    clients = []
    for i in range(8):
        user = django_user_model.objects.create_user(f"u{i}", f"u{i}@example.com", PASSWORD)
        PhoneDevice.objects.create(user=user, phone_number=f"+44740012370{i}")
        clients.append(login(f"u{i}"))
    early = clients.pop(0)  # got its code before the outage
    assert api_post(early, "send").status_code == 202
    early_pin = sim.last_pin("+447400123700")

    sim.set_fault("*", "503")
    for client in clients[:threshold]:
        assert_unavailable(api_post(client, "send"))
    assert sim.request_count("send") == 1 + threshold

    # Open: no network call at all, and an immediate answer.
    fast, elapsed = timed_post(clients[threshold], "send")
    assert_unavailable(fast)
    assert elapsed < TEST_TIMEOUT[1]
    verify, _ = timed_post(early, "verify", {"pin": early_pin})  # the right code
    assert_unavailable(verify)
    assert sim.request_count("send") == 1 + threshold
    assert sim.request_count("verify") == 0
    assert OtpChallenge.objects.get(phone_number="+447400123700").attempts == 0

    now = time.time()
    with time_machine.travel(now + cooldown + 1):
        # Half-open: exactly one probe goes out; it fails and the breaker re-opens.
        assert_unavailable(api_post(clients[threshold + 1], "send"))
        assert_unavailable(api_post(clients[threshold + 2], "send"))
        assert sim.request_count("send") == 1 + threshold + 1
    sim.clear_faults()
    with time_machine.travel(now + 2 * cooldown + 2):
        # The next probe succeeds and closes the breaker for everyone.
        assert api_post(clients[threshold + 3], "send").status_code == 202
        assert sim.request_count("send") == 1 + threshold + 2
        assert api_post(early, "verify", {"pin": early_pin}).json() == {"state": "verified"}

    assert list(
        OtpChallenge.objects.filter(status=Status.VERIFIED).values_list("phone_number", flat=True)
    ) == ["+447400123700"]
    for client in clients:
        assert_pending(client)


# --- T48: the provider is down; there is no way around the code ----------------------------


@pytest.mark.security("T48")
def test_with_the_provider_down_only_a_second_factor_finishes_a_login(
    sim, django_user_model, phone_user, settings
):
    settings.INFOBIP_OTP_REMEMBER_DEVICE_DAYS = 30
    other = django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)
    PhoneDevice.objects.create(user=other, phone_number="+447400123999")
    # Bob trusted this browser while the provider was up: his alternative factor.
    bobs_browser = Client()
    bobs_browser.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    bobs_browser.get(VERIFY_PAGE)
    bobs_browser.post(VERIFY_PAGE, {"pin": sim.last_pin("+447400123999"), "remember": "on"})
    assert bobs_browser.cookies.get(COOKIE_NAME)
    bobs_browser.post("/accounts/logout/")
    sends_before = sim.request_count("send")

    sim.stop()  # Infobip is gone: connections are refused

    bobs_browser.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    assert bobs_browser.get("/").status_code == 200

    browser = Client()
    browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    page = browser.get(VERIFY_PAGE)
    assert page.status_code == 200 and GENERIC in page.content.decode()
    api = login()
    assert_unavailable(api_post(api, "send"))
    attempts = [
        api_post(api, "verify", {"pin": "000000"}),
        api_post(api, "verify", {"pin": "123456", "skip": True, "otp_verified": True}),
        browser.post(VERIFY_PAGE, {"pin": "000000", "action": "skip"}),
        browser.post(VERIFY_PAGE + "?skip=1&bypass=1", {"action": "verify"}),
        browser.get("/?otp=skip"),
        browser.get("/admin/"),
        api.get("/", headers={"accept": "application/json", "x-otp-skip": "1"}),
    ]
    assert [a.status_code for a in attempts] == [400, 400, 200, 200, 302, 302, 401]
    for client in (browser, api):
        assert_pending(client)
        assert client.get("/").status_code == 302
    assert not OtpChallenge.objects.filter(status=Status.VERIFIED, user__username="alice").exists()
    assert sim.request_count("send") == sends_before


# Identifiers and setting names that would switch the code off or around. Prose in
# comments is ignored; the scan reads names and short string literals only.
SKIP_PATTERN = re.compile(
    r"(?i)(skip|bypass|disable|fail_?open|fallback|emergency|backdoor|master|magic)"
    r"[_-]?(otp|2fa|mfa|two_?factor|second_?factor|verification|verify|sms|code|pin)"
    r"|(no|without)[_-]?(otp|2fa|mfa|two_?factor|second_?factor)"
    r"|(otp|2fa|mfa|sms)[_-]?(skip|bypass|off|disabled?|fail_?open|optional)"
    r"|fail_?open"
)


def identifiers_and_flags(source):
    """Names, and string literals short enough to be a flag, setting or parameter name."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME:
            found.append(token.string)
        elif token.type == tokenize.STRING:
            try:
                value = ast.literal_eval(token.string)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, str) and re.fullmatch(r"[\w.:-]{1,60}", value):
                found.append(value)
    return found


def skip_switches(source):
    return sorted({name for name in identifiers_and_flags(source) if SKIP_PATTERN.search(name)})


@pytest.mark.security("T48")
def test_the_scan_would_find_a_skip_switch():
    planted = (
        'SKIP_OTP = getattr(settings, "INFOBIP_OTP_BYPASS", False)\n'
        'if request.GET.get("no_2fa") or fail_open:\n'
        "    pass  # prose about skipping codes is not a switch\n"
    )
    assert skip_switches(planted) == ["INFOBIP_OTP_BYPASS", "SKIP_OTP", "fail_open", "no_2fa"]


@pytest.mark.security("T48")
def test_no_setting_flag_or_parameter_can_skip_the_second_factor():
    package = Path(infobip_otp.__file__).parent
    sources = [
        path
        for path in sorted(package.rglob("*.py"))
        if "migrations" not in path.parts and "testing" not in path.parts
    ]
    assert len(sources) > 20
    offenders = {
        str(path.relative_to(package)): switches
        for path in sources
        if (switches := skip_switches(path.read_text()))
    }
    assert offenders == {}
    assert [name for name in DEFAULTS if SKIP_PATTERN.search(name)] == []
    templates = "\n".join(p.read_text() for p in (package / "templates").rglob("*.html"))
    assert not re.search(r'name="(skip|bypass)\w*"', templates)
