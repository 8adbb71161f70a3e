"""The Infobip HTTP client: request shapes, error mapping, retries, breaker, redaction."""

import logging
import threading
import time
import traceback
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
import responses
import time_machine
from django.core.cache.backends.base import BaseCache
from responses import matchers
from responses.registries import OrderedRegistry
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from infobip_otp import __version__
from infobip_otp.breaker import breaker
from infobip_otp.client import (
    Application,
    InfobipClient,
    MessageTemplate,
    PinVerification,
    SentPin,
    Verification,
    get_session,
    redact,
)
from infobip_otp.exceptions import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderUnavailable,
)
from infobip_otp.testing.pytest_plugin import reset_client_state

BASE = "https://xyz.api.infobip.test"
KEY = "003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9"
TIMEOUT = (1.5, 4.0)
PIN_ID = "9C817C6F8AF3D48F9FE553282AFA2B67"
SEND_URL = f"{BASE}/2fa/2/pin"
VERIFY_URL = f"{BASE}/2fa/2/pin/{PIN_ID}/verify"
GENERIC = str(ProviderError.default_detail)
SENT = {
    "pinId": PIN_ID,
    "to": "447400123456",
    "ncStatus": "NC_DESTINATION_REACHABLE",
    "smsStatus": "MESSAGE_SENT",
}


class BrokenCache(BaseCache):
    """A cache whose server is down: every operation raises."""

    def __init__(self, location, params):
        super().__init__(params)

    def _fail(self, *args, **kwargs):
        raise ConnectionError("cache server unreachable")

    add = get = set = delete = incr = get_many = delete_many = clear = _fail


@pytest.fixture(autouse=True)
def client_settings(settings):
    settings.INFOBIP_OTP_BASE_URL = BASE + "/"
    settings.INFOBIP_OTP_API_KEY = KEY
    settings.INFOBIP_OTP_TIMEOUT = TIMEOUT
    settings.INFOBIP_OTP_BREAKER_THRESHOLD = 3
    settings.INFOBIP_OTP_BREAKER_COOLDOWN = 30
    reset_client_state()
    yield settings
    reset_client_state()


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def ordered():
    with responses.RequestsMock(
        assert_all_requests_are_fired=True, registry=OrderedRegistry
    ) as mock:
        yield mock


def api_headers():
    return {
        "Authorization": f"App {KEY}",
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": f"infobip-otp/{__version__}",
    }


def exchange_kwargs():
    return matchers.request_kwargs_matcher({"timeout": TIMEOUT})


def error_body(message_id, text, validation_errors=None):
    details = {"messageId": message_id, "text": text}
    if validation_errors:
        details["validationErrors"] = validation_errors
    return {"requestError": {"serviceException": details}}


def refused():
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
    return requests.exceptions.ConnectionError(MaxRetryError(None, SEND_URL, reason))


def send(client=None):
    client = client or InfobipClient()
    return client.send_pin("447400123456", application_id="APP", message_id="MSG")


# --- Request shapes -----------------------------------------------------------------------


def test_send_pin_posts_digits_with_app_auth_json_and_timeout(rsps):
    rsps.post(
        SEND_URL,
        json=SENT,
        match=[
            matchers.query_param_matcher({"ncNeeded": "true"}),
            matchers.json_params_matcher(
                {"applicationId": "APP", "messageId": "MSG", "to": "447400123456"},
                strict_match=True,
            ),
            matchers.header_matcher(api_headers()),
            exchange_kwargs(),
        ],
    )
    assert send() == SentPin(
        pin_id=PIN_ID,
        to="447400123456",
        sms_status="MESSAGE_SENT",
        nc_status="NC_DESTINATION_REACHABLE",
    )
    assert len(rsps.calls) == 1


def test_send_pin_can_skip_number_lookup(rsps):
    rsps.post(
        SEND_URL,
        json={"pinId": PIN_ID, "to": "447400123456", "smsStatus": "MESSAGE_SENT"},
        match=[matchers.query_param_matcher({"ncNeeded": "false"})],
    )
    sent = InfobipClient().send_pin(
        "447400123456", application_id="APP", message_id="MSG", nc_needed=False
    )
    assert sent.nc_status == ""


def test_resend_pin_posts_an_empty_object(rsps):
    rsps.post(
        f"{BASE}/2fa/2/pin/{PIN_ID}/resend",
        json=SENT,
        match=[
            matchers.json_params_matcher({}, strict_match=True),
            matchers.header_matcher(api_headers()),
            exchange_kwargs(),
        ],
    )
    assert InfobipClient().resend_pin(PIN_ID).pin_id == PIN_ID


def test_verify_pin_posts_the_pin_and_parses_the_verdict(rsps):
    rsps.post(
        VERIFY_URL,
        json={
            "pinId": PIN_ID,
            "msisdn": "447400123456",
            "verified": False,
            "attemptsRemaining": 4,
            "pinError": "WRONG_PIN",
        },
        match=[
            matchers.json_params_matcher({"pin": "123456"}, strict_match=True),
            matchers.header_matcher(api_headers()),
            exchange_kwargs(),
        ],
    )
    assert InfobipClient().verify_pin(PIN_ID, "123456") == PinVerification(
        pin_id=PIN_ID,
        msisdn="447400123456",
        verified=False,
        attempts_remaining=4,
        pin_error="WRONG_PIN",
    )


def test_path_ids_are_quoted(rsps):
    rsps.post(f"{BASE}/2fa/2/pin/a%2F..%2Fb/verify", json={"verified": False})
    InfobipClient().verify_pin("a/../b", "123456")
    assert rsps.calls[0].request.url == f"{BASE}/2fa/2/pin/a%2F..%2Fb/verify"


@pytest.mark.parametrize("status", [200, 201])
def test_create_application_accepts_200_and_201(rsps, status):
    configuration = {"pinAttempts": 5, "pinTimeToLive": "5m"}
    rsps.post(
        f"{BASE}/2fa/2/applications",
        status=status,
        json={
            "applicationId": "APP",
            "name": "site",
            "enabled": True,
            "configuration": configuration,
        },
        match=[
            matchers.json_params_matcher(
                {"name": "site", "enabled": True, "configuration": configuration},
                strict_match=True,
            ),
            matchers.header_matcher(api_headers()),
            exchange_kwargs(),
        ],
    )
    application = InfobipClient().create_application("site", configuration)
    assert application == Application("APP", "site", True, configuration)


def test_list_and_update_applications(rsps):
    rsps.get(
        f"{BASE}/2fa/2/applications",
        json=[{"applicationId": "A1", "name": "one", "enabled": False, "configuration": {}}],
        match=[matchers.header_matcher(api_headers()), exchange_kwargs()],
    )
    rsps.put(
        f"{BASE}/2fa/2/applications/A1",
        json={
            "applicationId": "A1",
            "name": "one",
            "enabled": True,
            "configuration": {"pinAttempts": 3},
        },
        match=[
            matchers.json_params_matcher(
                {"name": "one", "enabled": True, "configuration": {"pinAttempts": 3}},
                strict_match=True,
            ),
            exchange_kwargs(),
        ],
    )
    client = InfobipClient()
    assert client.list_applications() == [Application("A1", "one", False, {})]
    updated = client.update_application("A1", name="one", configuration={"pinAttempts": 3})
    assert updated.configuration == {"pinAttempts": 3}


def test_template_management(rsps):
    template = {
        "messageId": "M1",
        "applicationId": "A1",
        "pinPlaceholder": "{{pin}}",
        "messageText": "Code {{pin}}",
        "pinType": "NUMERIC",
        "pinLength": 6,
    }
    rsps.get(f"{BASE}/2fa/2/applications/A1/messages", json=[template], match=[exchange_kwargs()])
    rsps.post(
        f"{BASE}/2fa/2/applications/A1/messages",
        json=template,
        match=[
            matchers.json_params_matcher(
                {
                    "messageText": "Code {{pin}}",
                    "pinType": "NUMERIC",
                    "pinLength": 6,
                    "senderId": "Site",
                },
                strict_match=True,
            ),
            exchange_kwargs(),
        ],
    )
    rsps.put(
        f"{BASE}/2fa/2/applications/A1/messages/M1",
        json={**template, "pinLength": 8},
        match=[matchers.json_params_matcher({"pinLength": 8}, strict_match=True)],
    )
    client = InfobipClient()
    expected = MessageTemplate("M1", "A1", "Code {{pin}}", "NUMERIC", 6, None)
    assert client.list_templates("A1") == [expected]
    created = client.create_template(
        "A1", message_text="Code {{pin}}", pin_length=6, sender_id="Site"
    )
    assert created == expected
    assert client.update_template("A1", "M1", pin_length=8).pin_length == 8


def test_verification_status_sends_the_filters(rsps):
    rsps.get(
        f"{BASE}/2fa/2/applications/A1/verifications",
        json={
            "verifications": [
                {
                    "msisdn": "447400123456",
                    "verified": True,
                    "verifiedAt": 1700000001000,
                    "sentAt": 1700000000000,
                }
            ]
        },
        match=[
            matchers.query_param_matcher({"msisdn": "447400123456", "verified": "true"}),
            exchange_kwargs(),
        ],
    )
    rows = InfobipClient().verification_status("A1", "447400123456", verified=True)
    assert rows == [Verification("447400123456", True, 1700000001000, 1700000000000)]


def test_one_session_per_process_sized_for_threads(settings):
    settings.INFOBIP_OTP_POOL_SIZE = 17
    reset_client_state()
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_session())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(session) for session in seen}) == 1
    adapter = seen[0].get_adapter(BASE)
    assert adapter._pool_maxsize == 17
    assert adapter.max_retries.total == 0
    assert InfobipClient().session is seen[0]


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def environment(monkeypatch):
    """No proxy or CA variables but those a test sets."""
    for name in (*PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    reset_client_state()
    return monkeypatch


def sent_with(rsps, **expected):
    rsps.post(SEND_URL, json=SENT, match=[matchers.request_kwargs_matcher(expected)])


def test_proxy_and_ca_bundle_are_taken_from_the_environment(rsps, environment):
    environment.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    environment.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/company-ca.pem")
    sent_with(
        rsps, proxies={"https": "http://proxy.test:3128"}, verify="/etc/ssl/certs/company-ca.pem"
    )
    assert send().pin_id == PIN_ID


def test_no_proxy_hosts_are_reached_directly(rsps, environment):
    environment.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    environment.setenv("NO_PROXY", ".infobip.test")
    sent_with(rsps, proxies={}, verify=True)
    assert send().pin_id == PIN_ID


def test_the_environment_is_read_once_per_process(rsps, environment):
    sent_with(rsps, proxies={})
    send()
    environment.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    sent_with(rsps, proxies={})
    send()
    reset_client_state()
    sent_with(rsps, proxies={"https": "http://proxy.test:3128"})
    send()


def test_a_session_passed_in_is_used_as_configured(rsps, environment):
    environment.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    own = requests.Session()
    own.trust_env = False
    sent_with(rsps, proxies={})
    assert send(InfobipClient(session=own)).pin_id == PIN_ID


# --- Errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "message_id"),
    [
        (400, ProviderRequestError, "BAD_REQUEST"),
        (401, ProviderAuthError, "UNAUTHORIZED"),
        (403, ProviderAuthError, "FORBIDDEN"),
        (404, ProviderNotFound, "NOT_FOUND"),
        (409, ProviderRequestError, "CONFLICT"),
        (429, ProviderRateLimited, "TOO_MANY_REQUESTS"),
        (500, ProviderUnavailable, "GENERAL_ERROR"),
        (502, ProviderUnavailable, "GENERAL_ERROR"),
        (503, ProviderUnavailable, "GENERAL_ERROR"),
    ],
)
def test_error_statuses_map_to_typed_errors_with_a_generic_detail(rsps, status, error, message_id):
    rsps.post(SEND_URL, status=status, json=error_body(message_id, "Descriptive provider text"))
    with pytest.raises(error) as caught:
        send()
    exc = caught.value
    assert type(exc) is error
    assert exc.http_status == status
    assert exc.provider_code == message_id
    assert exc.provider_text == "Descriptive provider text"
    assert "Descriptive" not in str(exc)
    assert "Descriptive" not in exc.as_dict()["detail"]
    assert str(exc) == GENERIC
    assert len(rsps.calls) == 1


def test_validation_errors_are_kept(rsps):
    rsps.post(
        SEND_URL,
        status=400,
        json=error_body("BAD_REQUEST", "Bad request", {"to": ["must be digits"]}),
    )
    with pytest.raises(ProviderRequestError) as caught:
        send()
    assert caught.value.validation_errors == {"to": ["must be digits"]}


def test_error_envelope_is_read_whatever_the_content_type(rsps):
    rsps.post(
        SEND_URL,
        status=401,
        body='{"requestError": {"serviceException": {"messageId": "UNAUTHORIZED", '
        '"text": "Invalid login details"}}}',
        content_type="text/plain",
    )
    with pytest.raises(ProviderAuthError) as caught:
        send()
    assert caught.value.provider_code == "UNAUTHORIZED"
    assert caught.value.provider_text == "Invalid login details"


def test_html_error_page_is_unavailable_without_provider_fields(rsps):
    rsps.post(SEND_URL, status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    with pytest.raises(ProviderUnavailable) as caught:
        send()
    assert caught.value.http_status == 502
    assert caught.value.provider_code == ""


@pytest.mark.parametrize(
    ("header", "expected"), [({"Retry-After": "7"}, 7), ({}, None), ({"Retry-After": "soon"}, None)]
)
def test_429_carries_retry_after(rsps, header, expected):
    rsps.post(SEND_URL, status=429, json=error_body("TOO_MANY_REQUESTS", "Slow"), headers=header)
    with pytest.raises(ProviderRateLimited) as caught:
        send()
    assert caught.value.retry_after == expected
    assert caught.value.status_code == 429


def test_429_retry_after_as_an_http_date(rsps):
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    rsps.post(SEND_URL, status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(ProviderRateLimited) as caught:
        send()
    assert 115 <= caught.value.retry_after <= 121


@pytest.mark.parametrize(
    "body",
    [
        '{"pinId": "ABC", "to": ',  # truncated JSON
        "",
        '["not", "an", "object"]',
        '{"pinId": 12345}',  # wrong type
    ],
)
def test_malformed_success_body_is_unavailable(rsps, body):
    rsps.post(SEND_URL, status=200, body=body, content_type="application/json")
    with pytest.raises(ProviderUnavailable) as caught:
        send()
    assert caught.value.provider_code == "MALFORMED_RESPONSE"
    assert len(rsps.calls) == 1


def test_verify_with_a_non_boolean_verdict_is_malformed(rsps):
    rsps.post(VERIFY_URL, json={"pinId": PIN_ID, "verified": "true"})
    with pytest.raises(ProviderUnavailable):
        InfobipClient().verify_pin(PIN_ID, "123456")


def test_redirects_are_not_followed(rsps):
    rsps.post(SEND_URL, status=302, headers={"Location": "https://elsewhere.test/2fa/2/pin"})
    with pytest.raises(ProviderUnavailable) as caught:
        send()
    assert caught.value.http_status == 302
    assert len(rsps.calls) == 1


# --- Timeouts and retries -----------------------------------------------------------------


@pytest.mark.parametrize(
    "failure", [requests.exceptions.ReadTimeout(), requests.exceptions.ConnectTimeout()]
)
def test_timeouts_are_unavailable_and_never_retried(rsps, failure):
    rsps.post(SEND_URL, body=failure)
    with pytest.raises(ProviderUnavailable) as caught:
        send()
    assert caught.value.provider_code == "TIMEOUT"
    assert len(rsps.calls) == 1


def test_refused_connection_is_retried_once_then_succeeds(ordered):
    ordered.post(SEND_URL, body=refused())
    ordered.post(SEND_URL, json=SENT)
    assert send().pin_id == PIN_ID
    assert len(ordered.calls) == 2


def test_refused_connection_is_retried_only_once(ordered):
    ordered.post(SEND_URL, body=refused())
    ordered.post(SEND_URL, body=refused())
    with pytest.raises(ProviderUnavailable) as caught:
        send()
    assert caught.value.provider_code == "CONNECTION_ERROR"
    assert len(ordered.calls) == 2


def test_transport_errors_do_not_chain_the_url(ordered):
    msisdn = "447400123456"
    url = f"{BASE}/2fa/2/applications/A1/verifications"
    failure = requests.exceptions.ConnectionError(
        MaxRetryError(None, f"{url}?msisdn={msisdn}", ProtocolError("aborted"))
    )
    ordered.get(url, body=failure)
    with pytest.raises(ProviderUnavailable) as caught:
        InfobipClient().verification_status("A1", msisdn)
    printed = "".join(traceback.format_exception(caught.value))
    assert msisdn not in printed
    assert caught.value.__cause__ is None
    assert caught.value.provider_text == "ConnectionError/ProtocolError"


@pytest.mark.parametrize("endpoint", ["send", "verify"])
def test_reset_after_the_request_was_written_is_not_retried(ordered, endpoint):
    reset = requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )
    url = SEND_URL if endpoint == "send" else VERIFY_URL
    ordered.post(url, body=reset)
    with pytest.raises(ProviderUnavailable):
        if endpoint == "send":
            send()
        else:
            InfobipClient().verify_pin(PIN_ID, "123456")
    assert len(ordered.calls) == 1


# --- Circuit breaker ----------------------------------------------------------------------


def fail_times(rsps, count):
    for _ in range(count):
        with pytest.raises(ProviderError):
            send()


def test_breaker_opens_after_threshold_and_fails_fast(rsps):
    rsps.post(SEND_URL, status=500, json=error_body("GENERAL_ERROR", "boom"))
    fail_times(rsps, 3)
    assert len(rsps.calls) == 3
    for _ in range(5):
        with pytest.raises(ProviderUnavailable) as caught:
            send()
        assert caught.value.provider_code == "CIRCUIT_OPEN"
    with pytest.raises(ProviderUnavailable) as caught:
        InfobipClient().verify_pin(PIN_ID, "123456")  # no mock registered: no call allowed
    assert caught.value.provider_code == "CIRCUIT_OPEN"
    assert len(rsps.calls) == 3


def test_breaker_probes_once_after_cooldown_and_closes_on_success(ordered):
    for _ in range(3):
        ordered.post(SEND_URL, status=503)
    ordered.post(SEND_URL, json=SENT)
    ordered.post(SEND_URL, json=SENT)
    fail_times(ordered, 3)
    with time_machine.travel(time.time() + 29, tick=False), pytest.raises(ProviderUnavailable):
        send()
    assert len(ordered.calls) == 3
    with time_machine.travel(time.time() + 31, tick=False):
        assert send().pin_id == PIN_ID  # the probe
    assert len(ordered.calls) == 4
    assert send().pin_id == PIN_ID  # closed again: no cool-down any more
    assert len(ordered.calls) == 5


def test_only_one_caller_probes_while_half_open(rsps):
    rsps.post(SEND_URL, status=500)
    fail_times(rsps, 3)
    with time_machine.travel(time.time() + 31, tick=False):
        assert breaker.before_call() is True  # another worker took the probe
        with pytest.raises(ProviderUnavailable) as caught:
            send()
    assert caught.value.provider_code == "CIRCUIT_OPEN"
    assert len(rsps.calls) == 3


def test_failed_probe_opens_for_another_cooldown(rsps):
    rsps.post(SEND_URL, status=500)
    fail_times(rsps, 3)
    start = time.time()
    with time_machine.travel(start + 31, tick=False):
        with pytest.raises(ProviderUnavailable) as caught:
            send()
        assert caught.value.http_status == 500  # the probe reached the provider
    assert len(rsps.calls) == 4
    with time_machine.travel(start + 50, tick=False):
        with pytest.raises(ProviderUnavailable) as caught:
            send()
        assert caught.value.provider_code == "CIRCUIT_OPEN"
    assert len(rsps.calls) == 4


def test_failed_probes_keep_it_open_past_the_failure_window(rsps):
    rsps.post(SEND_URL, status=500)
    fail_times(rsps, 3)
    start = time.time()
    for probe in range(1, 22):  # 21 cool-downs: well past the 600 s failure count window
        with time_machine.travel(start + 31 * probe, tick=False):
            with pytest.raises(ProviderUnavailable) as caught:
                send()
            assert caught.value.http_status == 500  # the probe reached the provider
        with time_machine.travel(start + 31 * probe + 10, tick=False):
            with pytest.raises(ProviderUnavailable) as caught:
                send()
            assert caught.value.provider_code == "CIRCUIT_OPEN"
    assert len(rsps.calls) == 3 + 21


def test_success_resets_the_consecutive_count(ordered):
    for status in (500, 500, 200, 500, 500):
        ordered.post(SEND_URL, status=status, json=SENT if status == 200 else {})
    ordered.post(SEND_URL, json=SENT)
    fail_times(ordered, 2)
    send()
    fail_times(ordered, 2)
    assert send().pin_id == PIN_ID
    assert len(ordered.calls) == 6


@pytest.mark.parametrize("status", [400, 404, 429])
def test_answers_about_one_request_do_not_open_the_breaker(rsps, status):
    rsps.post(SEND_URL, status=status, json=error_body("X", "x"))
    for _ in range(5):
        with pytest.raises(ProviderError) as caught:
            send()
        assert caught.value.provider_code == "X"
    assert len(rsps.calls) == 5


def test_auth_errors_open_the_breaker(rsps):
    rsps.post(SEND_URL, status=401, json=error_body("UNAUTHORIZED", "Invalid login details"))
    fail_times(rsps, 3)
    with pytest.raises(ProviderUnavailable) as caught:
        send()
    assert caught.value.provider_code == "CIRCUIT_OPEN"
    assert len(rsps.calls) == 3


def test_timeouts_and_malformed_answers_open_the_breaker(ordered):
    ordered.post(SEND_URL, body=requests.exceptions.ReadTimeout())
    ordered.post(SEND_URL, body="{not json", content_type="application/json")
    ordered.post(SEND_URL, body=requests.exceptions.ConnectTimeout())
    fail_times(ordered, 3)
    with pytest.raises(ProviderUnavailable) as caught:
        send()
    assert caught.value.provider_code == "CIRCUIT_OPEN"
    assert len(ordered.calls) == 3


def test_management_client_without_breaker_is_never_short_circuited(rsps):
    rsps.post(SEND_URL, status=500)
    fail_times(rsps, 3)
    with pytest.raises(ProviderUnavailable) as caught:
        send(InfobipClient(breaker=None))
    assert caught.value.http_status == 500
    assert len(rsps.calls) == 4


def test_breaker_state_is_shared_through_the_cache(rsps):
    rsps.post(SEND_URL, status=500)
    fail_times(rsps, 3)
    breaker._fallback.clear()  # what another process would see: only the shared cache
    with pytest.raises(ProviderUnavailable) as caught:
        send()
    assert caught.value.provider_code == "CIRCUIT_OPEN"


def test_cache_outage_falls_back_to_a_per_process_breaker(rsps, settings, caplog):
    settings.CACHES = {
        **settings.CACHES,
        "broken": {"BACKEND": "tests.test_client.BrokenCache"},
    }
    settings.INFOBIP_OTP_CACHE = "broken"
    rsps.post(SEND_URL, status=500)
    with caplog.at_level(logging.ERROR, logger="infobip_otp.client"):
        fail_times(rsps, 3)
        with pytest.raises(ProviderUnavailable) as caught:
            send()
    assert caught.value.provider_code == "CIRCUIT_OPEN"
    assert len(rsps.calls) == 3
    assert any("cache 'broken' failed" in record.getMessage() for record in caplog.records)


# --- Redaction ----------------------------------------------------------------------------


def test_redact_masks_numbers_pins_keys_and_newlines():
    text = (
        f"to +44 7400 123456 (447400123456) pin 123456 key {KEY} "
        "Authorization: App s3cr3t\nforged line"
    )
    redacted = redact(text, [KEY])
    for secret in ("123456", "7400", KEY, "s3cr3t", "\n"):
        assert secret not in redacted
    assert "forged line" in redacted
    assert redact("Invalid login details") == "Invalid login details"
    assert len(redact("x" * 5000)) < 400


def test_provider_failures_are_logged_redacted(rsps, caplog):
    text = f"Number 447400123456 rejected, pin 654321, key {KEY}"
    rsps.post(
        SEND_URL,
        status=400,
        json=error_body("BAD_REQUEST", text, {"to": ["447400123456 is not allowed"]}),
    )
    with (
        caplog.at_level(logging.WARNING, logger="infobip_otp.client"),
        pytest.raises(ProviderRequestError) as caught,
    ):
        send()
    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.name == "infobip_otp.client"
    message = record.getMessage()
    assert "status=400" in message
    assert "messageId=BAD_REQUEST" in message
    assert "rejected" in message
    for secret in ("447400123456", "654321", KEY, KEY[:32]):
        assert secret not in message
        assert secret not in caught.value.provider_text
        assert secret not in str(caught.value.validation_errors)
