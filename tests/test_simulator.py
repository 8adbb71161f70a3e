"""The local Infobip 2FA simulator, driven over real sockets with ``requests``."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from infobip_otp.testing.simulator import SimulatorServer, main, parse_fault

NUMBER = "447700900123"
OTHER_NUMBER = "447700900456"
DEFAULT_CONFIGURATION = {
    "pinAttempts": 10,
    "allowMultiplePinVerifications": True,
    "pinTimeToLive": "15m",
    "verifyPinLimit": "1/3s",
    "sendPinPerApplicationLimit": "10000/1d",
    "sendPinPerPhoneNumberLimit": "3/1d",
}
# Verification tests make several attempts in a row; the default 1/3s limit has its own test.
MANY_VERIFICATIONS = "100/1s"


class Api:
    """A tiny Infobip client bound to one simulator."""

    def __init__(self, sim: SimulatorServer, key: str | None = None) -> None:
        self.sim = sim
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"App {key or sim.api_key}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return self.session.request(method, self.sim.url + path, **kwargs)

    def send(self, app: dict, template: dict, to: str = NUMBER, **kwargs) -> requests.Response:
        body = {"applicationId": app["applicationId"], "messageId": template["messageId"], "to": to}
        return self("POST", "/2fa/2/pin", json=body, **kwargs)

    def verify(self, pin_id: str, pin: str) -> requests.Response:
        return self("POST", f"/2fa/2/pin/{pin_id}/verify", json={"pin": pin})


@pytest.fixture
def sim():
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def api(sim):
    return Api(sim)


@pytest.fixture
def app(sim):
    return sim.create_application(verify_pin_limit=MANY_VERIFICATIONS)


@pytest.fixture
def template(sim, app):
    return sim.create_template(app["applicationId"])


@pytest.fixture
def pin_id(api, app, template):
    return api.send(app, template).json()["pinId"]


def service_exception(response: requests.Response) -> dict:
    return response.json()["requestError"]["serviceException"]


# --- Applications -------------------------------------------------------------------------


def test_create_application_answers_201_and_echoes_the_defaults(api):
    response = api("POST", "/2fa/2/applications", json={"name": "shop"})

    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"[0-9A-F]{32}", body["applicationId"])
    assert body["name"] == "shop"
    assert body["enabled"] is True
    assert body["configuration"] == DEFAULT_CONFIGURATION


def test_created_application_is_listed_and_readable(api):
    created = api("POST", "/2fa/2/applications", json={"name": "shop"}).json()

    assert api("GET", "/2fa/2/applications").json() == [created]
    assert api("GET", f"/2fa/2/applications/{created['applicationId']}").json() == created


def test_create_application_requires_a_name(api):
    response = api("POST", "/2fa/2/applications", json={"enabled": True})

    assert response.status_code == 400
    assert service_exception(response)["messageId"] == "BAD_REQUEST"
    assert "name" in service_exception(response)["validationErrors"]


@pytest.mark.parametrize("ttl", ["15x", "0m", "366d", "m15", "15 m", 15])
def test_bad_pin_time_to_live_is_rejected(api, ttl):
    body = {"name": "shop", "configuration": {"pinTimeToLive": ttl}}
    response = api("POST", "/2fa/2/applications", json=body)

    assert response.status_code == 400
    assert list(service_exception(response)["validationErrors"]) == ["configuration.pinTimeToLive"]


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("verifyPinLimit", "3s"),
        ("verifyPinLimit", "1/2d"),
        ("sendPinPerPhoneNumberLimit", "a/1d"),
        ("sendPinPerPhoneNumberLimit", "0/1d"),
        ("sendPinPerApplicationLimit", "5/366d"),
    ],
)
def test_bad_limit_is_rejected(api, field, limit):
    body = {"name": "shop", "configuration": {field: limit}}
    response = api("POST", "/2fa/2/applications", json=body)

    assert response.status_code == 400
    assert list(service_exception(response)["validationErrors"]) == [f"configuration.{field}"]


def test_formats_without_a_time_length_are_accepted(api):
    configuration = {
        "pinTimeToLive": "h",
        "verifyPinLimit": "5/s",
        "sendPinPerPhoneNumberLimit": "2/d",
    }
    response = api(
        "POST", "/2fa/2/applications", json={"name": "s", "configuration": configuration}
    )

    assert response.status_code == 201
    assert response.json()["configuration"] == {**DEFAULT_CONFIGURATION, **configuration}


def test_put_application_replaces_and_resets_omitted_configuration(api):
    configuration = {"pinAttempts": 3, "pinTimeToLive": "5m"}
    created = api(
        "POST",
        "/2fa/2/applications",
        json={"name": "shop", "enabled": False, "configuration": configuration},
    ).json()
    path = f"/2fa/2/applications/{created['applicationId']}"

    response = api("PUT", path, json={"name": "renamed", "configuration": {"pinAttempts": 4}})

    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    assert response.json()["enabled"] is True
    assert response.json()["configuration"] == {**DEFAULT_CONFIGURATION, "pinAttempts": 4}
    assert api("GET", path).json() == response.json()


def test_unknown_application_is_404(api):
    response = api("GET", "/2fa/2/applications/NOPE")

    assert response.status_code == 404
    assert service_exception(response)["messageId"] == "NOT_FOUND"


# --- Templates ----------------------------------------------------------------------------


def test_template_without_pin_placeholder_is_rejected(api, app):
    body = {"messageText": "Your code is {pin}", "pinType": "NUMERIC"}
    response = api("POST", f"/2fa/2/applications/{app['applicationId']}/messages", json=body)

    assert response.status_code == 400
    assert list(service_exception(response)["validationErrors"]) == ["messageText"]


@pytest.mark.parametrize(
    "change", [{"pinType": None}, {"pinType": "DIGITS"}, {"pinLength": 0}, {"pinLength": 17}]
)
def test_template_needs_a_valid_pin_type_and_length(api, app, change):
    body = {"messageText": "Code {{pin}}", "pinType": "NUMERIC", **change}
    response = api("POST", f"/2fa/2/applications/{app['applicationId']}/messages", json=body)

    assert response.status_code == 400
    assert list(service_exception(response)["validationErrors"]) == list(change)


def test_template_defaults_and_placeholder_are_echoed(api, app):
    path = f"/2fa/2/applications/{app['applicationId']}/messages"
    response = api("POST", path, json={"messageText": "Code {{pin}}", "pinType": "HEX"})

    assert response.status_code == 200
    body = response.json()
    assert body["applicationId"] == app["applicationId"]
    assert re.fullmatch(r"[0-9A-F]{32}", body["messageId"])
    assert body["pinPlaceholder"] == "{{pin}}"
    assert body["pinLength"] == 4
    assert body["language"] == "en"
    assert api("GET", path).json() == [body]
    assert api("GET", f"{path}/{body['messageId']}").json() == body


def test_put_template_keeps_omitted_fields(api, app, template):
    path = f"/2fa/2/applications/{app['applicationId']}/messages/{template['messageId']}"

    response = api("PUT", path, json={"pinLength": 8, "senderId": "Shop"})

    assert response.status_code == 200
    assert response.json() == {**template, "pinLength": 8, "senderId": "Shop"}


def test_template_of_another_application_is_404(api, sim, template):
    other = sim.create_application("other")
    path = f"/2fa/2/applications/{other['applicationId']}/messages/{template['messageId']}"

    assert api("GET", path).status_code == 404


# --- Sending ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pin_type", "length", "pattern"),
    [
        ("NUMERIC", 6, r"[0-9]{6}"),
        ("HEX", 8, r"[0-9A-F]{8}"),
        ("ALPHA", 5, r"[A-Z]{5}"),
        ("ALPHANUMERIC", 10, r"[A-Z0-9]{10}"),
    ],
)
def test_send_returns_a_pin_id_and_a_pin_of_the_template_shape(
    api, sim, app, pin_type, length, pattern
):
    template = sim.create_template(app["applicationId"], pin_type=pin_type, pin_length=length)

    response = api.send(app, template)

    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"[0-9A-F]{32}", body["pinId"])
    assert body == {
        "pinId": body["pinId"],
        "to": NUMBER,
        "ncStatus": "NC_DESTINATION_REACHABLE",
        "smsStatus": "MESSAGE_SENT",
    }
    assert re.fullmatch(pattern, sim.last_pin(NUMBER))
    assert sim.last_pin("+" + NUMBER) == sim.last_pin(NUMBER)


def test_send_without_number_lookup_omits_nc_status(api, app, template):
    response = api.send(app, template, params={"ncNeeded": "false"})

    assert response.status_code == 200
    assert "ncStatus" not in response.json()


@pytest.mark.parametrize("to", ["+447700900123", "44 7700 900123", "12345", "4477009001234567"])
def test_send_rejects_numbers_that_are_not_international_digits(api, sim, app, template, to):
    response = api.send(app, template, to=to)

    assert response.status_code == 400
    assert list(service_exception(response)["validationErrors"]) == ["to"]
    assert sim.last_pin(to) is None


def test_send_requires_application_message_and_number(api):
    response = api("POST", "/2fa/2/pin", json={})

    assert response.status_code == 400
    errors = service_exception(response)["validationErrors"]
    assert sorted(errors) == ["applicationId", "messageId", "to"]


def test_send_with_unknown_application_or_message_is_404(api, app, template):
    assert api.send({"applicationId": "NOPE"}, template).status_code == 404
    assert api.send(app, {"messageId": "NOPE"}).status_code == 404


def test_send_for_a_disabled_application_is_403(api, sim):
    app = sim.create_application(enabled=False)
    template = sim.create_template(app["applicationId"])

    response = api.send(app, template)

    assert response.status_code == 403
    assert service_exception(response)["messageId"] == "FORBIDDEN"


def test_per_number_send_limit_answers_429_with_retry_after(api, app, template):
    assert [api.send(app, template).status_code for _ in range(3)] == [200, 200, 200]

    response = api.send(app, template)

    assert response.status_code == 429
    assert service_exception(response)["messageId"] == "TOO_MANY_REQUESTS"
    assert 0 < int(response.headers["Retry-After"]) <= 86_400
    assert api.send(app, template, to=OTHER_NUMBER).status_code == 200


def test_per_number_send_window_reopens_when_the_clock_moves(api, sim, app, template):
    for _ in range(3):
        api.send(app, template)

    sim.advance(86_400)

    assert api.send(app, template).status_code == 200


def test_per_application_send_limit_answers_429(api, sim):
    app = sim.create_application(send_pin_per_application_limit="2/1h")
    template = sim.create_template(app["applicationId"])

    statuses = [api.send(app, template, to=f"4477009001{n:02}").status_code for n in range(3)]

    assert statuses == [200, 200, 429]


# --- Resending ----------------------------------------------------------------------------


def test_resend_sends_the_same_pin_under_the_same_pin_id(api, sim, pin_id):
    pin = sim.last_pin(NUMBER)

    response = api("POST", f"/2fa/2/pin/{pin_id}/resend", json={})

    assert response.status_code == 200
    assert response.json()["pinId"] == pin_id
    assert response.json()["to"] == NUMBER
    assert sim.last_pin(NUMBER) == pin


def test_resend_counts_toward_the_per_number_send_limit(api, pin_id):
    statuses = [api("POST", f"/2fa/2/pin/{pin_id}/resend").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


def test_resend_keeps_ttl_and_attempts(api, sim, pin_id):
    assert api.verify(pin_id, "wrong").json()["attemptsRemaining"] == 9
    sim.advance(14 * 60)
    api("POST", f"/2fa/2/pin/{pin_id}/resend", json={})

    assert api.verify(pin_id, "wrong").json()["attemptsRemaining"] == 8
    sim.advance(61)
    assert api.verify(pin_id, sim.last_pin(NUMBER)).json()["pinError"] == "TTL_EXPIRED"


def test_resend_of_unknown_pin_is_404(api):
    response = api("POST", "/2fa/2/pin/0123456789ABCDEF0123456789ABCDEF/resend", json={})

    assert response.status_code == 404
    assert service_exception(response)["messageId"] == "NOT_FOUND"


# --- Verifying ----------------------------------------------------------------------------


def test_verify_with_the_right_pin(api, sim, pin_id):
    response = api.verify(pin_id, sim.last_pin(NUMBER))

    assert response.status_code == 200
    assert response.json() == {
        "pinId": pin_id,
        "msisdn": NUMBER,
        "verified": True,
        "attemptsRemaining": 0,
    }


def test_wrong_pin_decrements_attempts_remaining(api, pin_id):
    first = api.verify(pin_id, "000000x").json()
    second = api.verify(pin_id, "000000x").json()

    assert (first["verified"], first["pinError"], first["attemptsRemaining"]) == (
        False,
        "WRONG_PIN",
        9,
    )
    assert second["attemptsRemaining"] == 8


def test_pin_expires_after_its_time_to_live(api, sim, pin_id):
    sim.advance(15 * 60)

    body = api.verify(pin_id, sim.last_pin(NUMBER)).json()

    assert body["verified"] is False
    assert body["pinError"] == "TTL_EXPIRED"


def test_no_more_pin_attempts_once_they_are_used_up(api, sim):
    app = sim.create_application(pin_attempts=2, verify_pin_limit=MANY_VERIFICATIONS)
    pin_id = api.send(app, sim.create_template(app["applicationId"])).json()["pinId"]

    answers = [api.verify(pin_id, "wrong").json() for _ in range(2)]
    final = api.verify(pin_id, sim.last_pin(NUMBER)).json()

    assert [(a["pinError"], a["attemptsRemaining"]) for a in answers] == [
        ("WRONG_PIN", 1),
        ("WRONG_PIN", 0),
    ]
    assert (final["verified"], final["pinError"], final["attemptsRemaining"]) == (
        False,
        "NO_MORE_PIN_ATTEMPTS",
        0,
    )


def test_a_verified_pin_verifies_again_by_default(api, sim, pin_id):
    pin = sim.last_pin(NUMBER)
    api.verify(pin_id, pin)

    again = api.verify(pin_id, pin).json()

    assert again["verified"] is True
    assert "pinError" not in again


def test_a_verified_pin_is_refused_when_multiple_verifications_are_off(api, sim):
    app = sim.create_application(
        allow_multiple_pin_verifications=False, verify_pin_limit=MANY_VERIFICATIONS
    )
    pin_id = api.send(app, sim.create_template(app["applicationId"])).json()["pinId"]
    pin = sim.last_pin(NUMBER)
    assert api.verify(pin_id, pin).json()["verified"] is True

    again = api.verify(pin_id, pin).json()

    assert (again["verified"], again["pinError"]) == (False, "NO_MORE_PIN_ATTEMPTS")


def test_verify_limit_per_number_answers_429_until_the_window_ends(api, sim):
    app = sim.create_application()  # verifyPinLimit 1/3s
    pin_id = api.send(app, sim.create_template(app["applicationId"])).json()["pinId"]
    assert api.verify(pin_id, "wrong").status_code == 200

    limited = api.verify(pin_id, sim.last_pin(NUMBER))
    sim.advance(3)
    allowed = api.verify(pin_id, sim.last_pin(NUMBER))

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert service_exception(limited)["messageId"] == "TOO_MANY_REQUESTS"
    assert allowed.json()["verified"] is True


def test_verify_of_unknown_pin_is_404(api):
    response = api.verify("0123456789ABCDEF0123456789ABCDEF", "123456")

    assert response.status_code == 404
    assert service_exception(response)["messageId"] == "NOT_FOUND"


def test_verify_without_a_pin_is_400(api, pin_id):
    response = api("POST", f"/2fa/2/pin/{pin_id}/verify", json={})

    assert response.status_code == 400
    assert list(service_exception(response)["validationErrors"]) == ["pin"]


def test_verification_status_lists_sends_with_millisecond_times(api, sim, app, template):
    before = time.time() * 1000
    pin_id = api.send(app, template).json()["pinId"]
    api.verify(pin_id, sim.last_pin(NUMBER))
    api.send(app, template)
    path = f"/2fa/2/applications/{app['applicationId']}/verifications"

    rows = api("GET", path, params={"msisdn": NUMBER}).json()["verifications"]
    verified = api("GET", path, params={"msisdn": NUMBER, "verified": "true"}).json()

    assert [row["verified"] for row in rows] == [False, True]
    assert "verifiedAt" not in rows[0]
    assert before <= rows[1]["sentAt"] <= rows[1]["verifiedAt"] <= time.time() * 1000
    assert verified["verifications"] == [rows[1]]


def test_verification_status_requires_msisdn(api, app):
    response = api("GET", f"/2fa/2/applications/{app['applicationId']}/verifications")

    assert response.status_code == 400
    assert list(service_exception(response)["validationErrors"]) == ["msisdn"]


# --- Authentication and errors ------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "App wrong-key", "Basic c2ltLWFwaS1rZXk="])
def test_requests_without_the_api_key_get_401(sim, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(f"{sim.url}/2fa/2/applications", headers=headers, timeout=5)

    assert response.status_code == 401
    assert response.json() == {
        "requestError": {
            "serviceException": {"messageId": "UNAUTHORIZED", "text": "Invalid login details"}
        }
    }


def test_malformed_json_body_is_400(api):
    response = api(
        "POST",
        "/2fa/2/applications",
        data="{not json",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert service_exception(response)["messageId"] == "BAD_REQUEST"


def test_unknown_path_is_404(api):
    response = api("GET", "/2fa/3/nothing")

    assert response.status_code == 404
    assert service_exception(response)["messageId"] == "NOT_FOUND"


# --- Faults -------------------------------------------------------------------------------


def elapsed(call) -> float:
    start = time.monotonic()
    call()
    return time.monotonic() - start


def test_global_latency_delays_every_answer():
    with SimulatorServer(latency_ms=200) as sim:
        assert elapsed(lambda: Api(sim)("GET", "/2fa/2/applications")) >= 0.2


def test_latency_fault_delays_only_its_endpoint(api, sim, app, template):
    sim.set_fault("send", "latency", ms=300)

    assert elapsed(lambda: api.send(app, template)) >= 0.3
    assert elapsed(lambda: api("GET", "/2fa/2/applications")) < 0.3
    assert sim.last_pin(NUMBER) is not None


def test_hang_fault_outlasts_the_client_read_timeout(api, sim, app, template):
    sim.set_fault("send", "hang", seconds=1.5)

    with pytest.raises(requests.exceptions.ReadTimeout):
        api.send(app, template, timeout=(1, 0.5))


@pytest.mark.parametrize("code", [500, 503])
def test_status_fault_answers_general_error_without_sending(api, sim, app, template, code):
    sim.set_fault("send", "status", code=code)

    response = api.send(app, template)

    assert response.status_code == code
    assert service_exception(response)["messageId"] == "GENERAL_ERROR"
    assert sim.last_pin(NUMBER) is None


def test_429_fault_carries_retry_after(api, sim, pin_id):
    sim.set_fault("verify", "429", retry_after=7)

    response = api.verify(pin_id, "123456")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert service_exception(response)["messageId"] == "TOO_MANY_REQUESTS"


def test_malformed_fault_answers_200_with_a_body_that_is_not_json(api, sim, app, template):
    sim.set_fault("send", "malformed")

    response = api.send(app, template)

    assert response.status_code == 200
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_contradictory_verify_fault(api, sim, pin_id):
    sim.set_fault("verify", "contradictory")

    body = api.verify(pin_id, "123456").json()

    assert body["verified"] is True
    assert body["pinError"] == "WRONG_PIN"
    assert body["pinId"] != pin_id


def test_contradictory_send_fault_has_no_pin_id(api, sim, app, template):
    sim.set_fault("send", "contradictory")

    response = api.send(app, template)

    assert response.status_code == 200
    assert "pinId" not in response.json()
    assert response.json()["smsStatus"] == "MESSAGE_SENT"


def test_reset_fault_resets_the_connection(api, sim, app, template):
    sim.set_fault("send", "reset")

    with pytest.raises(requests.exceptions.ConnectionError):
        api.send(app, template)


def test_fault_with_times_clears_itself(api, sim):
    sim.set_fault("applications", "503", times=2)

    statuses = [api("GET", "/2fa/2/applications").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]


def test_star_fault_hits_every_endpoint_unless_one_has_its_own(api, sim, pin_id):
    sim.set_fault("*", "status")
    sim.set_fault("verify", "429")

    assert api("GET", "/2fa/2/applications").status_code == 500
    assert api.verify(pin_id, "1").status_code == 429
    sim.clear_faults()
    assert api("GET", "/2fa/2/applications").status_code == 200


def test_faults_given_to_the_constructor():
    with SimulatorServer(faults={"applications": {"kind": "status", "code": 503}}) as sim:
        assert Api(sim)("GET", "/2fa/2/applications").status_code == 503


def test_faulted_requests_are_recorded(api, sim, app, template):
    sim.set_fault("send", "reset")

    with pytest.raises(requests.exceptions.ConnectionError):
        api.send(app, template)

    [recorded] = sim.requests_for("send")
    assert recorded.fault == "reset"
    assert recorded.body["to"] == NUMBER


def test_fault_spec_parsing():
    assert parse_fault("send:hang:seconds=1.5,times=2") == (
        "send",
        "hang",
        {"seconds": 1.5, "times": 2},
    )
    assert parse_fault("*:reset") == ("*", "reset", {})
    for bad in ("send", "mail:reset", "send:explode", "send:hang:ms=3", "send:status:code=404"):
        with pytest.raises(ValueError):
            parse_fault(bad)


# --- Recording and reset ------------------------------------------------------------------


def test_requests_are_recorded_per_endpoint(api, sim, pin_id):
    api.verify(pin_id, "123456")

    assert sim.request_count() == 2
    assert sim.request_count("send") == 1
    [verify] = sim.requests_for("verify")
    assert verify.method == "POST"
    assert verify.path == f"/2fa/2/pin/{pin_id}/verify"
    assert verify.body == {"pin": "123456"}
    assert verify.headers["Authorization"] == f"App {sim.api_key}"


def test_reset_clears_pins_requests_faults_and_clock_but_keeps_applications(api, sim, app, pin_id):
    sim.set_fault("send", "reset")
    sim.advance(60)

    sim.reset()

    assert sim.last_pin(NUMBER) is None
    assert sim.request_count() == 0
    assert api.verify(pin_id, "1").status_code == 404
    assert api("GET", f"/2fa/2/applications/{app['applicationId']}").status_code == 200
    assert abs(sim.api.now() - time.time()) < 5


# --- HTTP control paths -------------------------------------------------------------------


def test_control_pins_path_gives_the_last_pin(api, sim, pin_id):
    response = requests.get(f"{sim.url}/_simulator/pins/%2B{NUMBER}", timeout=5)
    missing = requests.get(f"{sim.url}/_simulator/pins/{OTHER_NUMBER}", timeout=5)

    assert response.status_code == 200
    assert response.json()["pin"] == sim.last_pin(NUMBER)
    assert response.json()["pinId"] == pin_id
    assert response.json()["text"] == f"Your code is {sim.last_pin(NUMBER)}"
    assert (missing.status_code, missing.json()) == (404, {"pin": None})


def test_control_requests_path_lists_requests_with_the_key_masked(api, sim, pin_id):
    response = requests.get(f"{sim.url}/_simulator/requests?endpoint=send", timeout=5)

    assert response.json()["count"] == 1
    [send] = response.json()["requests"]
    assert send["endpoint"] == "send"
    assert send["headers"]["Authorization"] == "App ***"
    assert sim.request_count() == 1  # control paths are not recorded


def test_control_faults_path_sets_and_clears_faults(api, sim):
    url = f"{sim.url}/_simulator/faults"

    posted = requests.post(url, json={"endpoint": "applications", "kind": "503"}, timeout=5)
    during = api("GET", "/2fa/2/applications").status_code
    requests.delete(url, timeout=5)
    after = api("GET", "/2fa/2/applications").status_code
    bad = requests.post(url, json={"endpoint": "send", "kind": "explode"}, timeout=5)

    assert posted.json()["faults"]["applications"]["code"] == 503
    assert (during, after) == (503, 200)
    assert bad.status_code == 400


def test_control_advance_and_reset_paths(api, sim, pin_id):
    advanced = requests.post(f"{sim.url}/_simulator/advance", json={"seconds": 900}, timeout=5)
    expired = api.verify(pin_id, sim.last_pin(NUMBER)).json()
    requests.post(f"{sim.url}/_simulator/reset", timeout=5)

    assert advanced.status_code == 200
    assert expired["pinError"] == "TTL_EXPIRED"
    assert sim.last_pin(NUMBER) is None


# --- Command line -------------------------------------------------------------------------


def test_module_runs_as_a_script_until_interrupted():
    process = subprocess.Popen(
        [sys.executable, "-m", "infobip_otp.testing.simulator", "--port", "0"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        response = requests.get(f"{url}/2fa/2/applications", timeout=5)
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=5)
        process.stdout.close()

    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert response.status_code == 401
    assert returncode == 0


def test_cli_rejects_a_bad_fault(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0", "--fault", "send:explode"])

    assert exit_info.value.code == 2
    assert "unknown fault kind" in capsys.readouterr().err


def test_management_command_prints_settings_for_a_ready_application(monkeypatch):
    pytest.importorskip("django")
    from django.core.management import call_command

    from infobip_otp.management.commands.infobip_otp_simulator import Command

    seen = {}

    def serve_and_stop(server):
        session = Api(server)
        seen["url"] = server.url
        seen["applications"] = session("GET", "/2fa/2/applications").json()
        app_id = seen["applications"][0]["applicationId"]
        seen["templates"] = session("GET", f"/2fa/2/applications/{app_id}/messages").json()
        server.stop()

    monkeypatch.setattr(SimulatorServer, "serve_forever", serve_and_stop)
    out = io.StringIO()

    call_command(Command(), "--port", "0", "--api-key", "demo-key", stdout=out)

    [template] = seen["templates"]
    assert (template["pinType"], template["pinLength"]) == ("NUMERIC", 6)
    assert out.getvalue().splitlines() == [
        f"INFOBIP_OTP_BASE_URL={seen['url']}",
        "INFOBIP_OTP_API_KEY=demo-key",
        f"INFOBIP_OTP_APPLICATION_ID={seen['applications'][0]['applicationId']}",
        f"INFOBIP_OTP_MESSAGE_ID={template['messageId']}",
    ]


def test_direct_setup_can_fix_the_ids_for_demos(sim):
    application = sim.create_application("demo", application_id="DEMO-APP")
    template = sim.create_template("DEMO-APP", message_id="DEMO-MSG")
    assert application["applicationId"] == "DEMO-APP"
    assert template["messageId"] == "DEMO-MSG"
    assert template["applicationId"] == "DEMO-APP"
    response = requests.post(
        f"{sim.url}/2fa/2/pin",
        json={"applicationId": "DEMO-APP", "messageId": "DEMO-MSG", "to": "447400123456"},
        headers={"Authorization": f"App {sim.api_key}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert sim.last_pin("447400123456") is not None
