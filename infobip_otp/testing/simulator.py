"""A local simulator of the Infobip 2FA API (v2), for tests, demos and benchmarks.

It is a standard-library HTTP server that speaks the part of the Infobip 2FA API that
``infobip_otp`` uses, with Infobip's semantics: applications (with configuration defaults),
SMS message templates, sending, resending and verifying PINs, verification status, the
``Authorization: App <key>`` header and the ``requestError.serviceException`` error
envelope. On top of the API it offers what a test double needs: the PIN it "sent"
(:meth:`SimulatorServer.last_pin`), a movable clock (:meth:`SimulatorServer.advance`), a
record of every request, and fault injection (latency, hang, 5xx, 429, malformed or
self-contradictory bodies, connection reset).

Run it in-process::

    with SimulatorServer() as sim:
        app = sim.create_application()
        template = sim.create_template(app["applicationId"])
        ...  # point the client at sim.url with api key sim.api_key

or as a separate process (then use the ``/_simulator/`` control paths)::

    python -m infobip_otp.testing.simulator --port 8085 --fault send:latency:ms=200

Control paths (no API key needed, never recorded):

- ``GET /_simulator/pins/{to}``: ``{"pin", "pinId", "to", "text"}`` of the last PIN sent to
  ``to`` (digits, or ``%2B`` and digits), 404 ``{"pin": null}`` if none;
- ``GET /_simulator/requests[?endpoint=send]``: ``{"count", "requests"}``, the API key masked;
- ``GET /_simulator/faults``; ``POST /_simulator/faults`` with
  ``{"endpoint": "send", "kind": "hang", "seconds": 5, "times": 1}`` (endpoint defaults to
  ``*``); ``DELETE /_simulator/faults`` clears them all;
- ``POST /_simulator/advance`` with ``{"seconds": 900}`` moves the clock;
- ``POST /_simulator/reset`` is :meth:`SimulatorServer.reset`.

Endpoint names, used for faults and request records: ``applications``, ``messages``,
``send``, ``resend``, ``verify``, ``verifications`` (``*`` in a fault means all of them).

Fault kinds and their parameters (every kind also takes ``times``, after which the fault
clears itself): ``latency`` (``ms``), ``hang`` (``seconds``, default 30), ``status``
(``code``, 500 or any 5xx; ``500`` and ``503`` are shorthands), ``429`` (``retry_after``
seconds, default 1), ``malformed``, ``contradictory``, ``reset``.

Decisions
---------
The numbers refer to the "Open questions" of the project's Infobip 2FA API reference.

1. Creating an application answers 201 (spec 3.210.0); creating a template answers 200.
2. ``pinError`` is one of ``WRONG_PIN``, ``TTL_EXPIRED``, ``NO_MORE_PIN_ATTEMPTS`` and is
   absent whenever ``verified`` is true.
3. Going over ``sendPinPerPhoneNumberLimit``, ``sendPinPerApplicationLimit`` or
   ``verifyPinLimit`` answers 429 ``TOO_MANY_REQUESTS`` / "Too many requests" with a
   ``Retry-After`` header: the whole seconds until the window ends, rounded up.
4. Limit windows are fixed: a window opens at the first counted request of its key and lasts
   the limit's length. Keys are per application (send per application), per application and
   number (send per number) and per application and MSISDN (verify). A refused request is
   not counted. A resend counts toward both send limits; it re-sends the same PIN and resets
   neither the TTL nor the attempts. Resending a verified or expired PIN is allowed.
5. ``attemptsRemaining`` starts at ``pinAttempts``; each wrong PIN decrements it and the
   answer shows the new value (first wrong PIN: ``pinAttempts - 1``). The wrong PIN that
   uses the last attempt answers ``WRONG_PIN`` with 0; later requests answer
   ``NO_MORE_PIN_ATTEMPTS``, even with the right PIN. A success sets it to 0, as in
   Infobip's examples. Expired or rate-limited verifications consume no attempt. An expired
   PIN answers ``TTL_EXPIRED`` before any other check.
6. ``allowMultiplePinVerifications`` true: a verified PIN verifies again with the right PIN
   while its TTL lasts (a wrong one answers ``WRONG_PIN`` with 0 attempts). False: every
   verification after the first success answers ``NO_MORE_PIN_ATTEMPTS``.
7. ``to`` must match ``^\\d{6,15}$`` (international digits, no ``+``, no spaces); anything
   else is a 400 with ``validationErrors["to"]``. Numbers are never normalised.
8. ``sentAt`` and ``verifiedAt`` are UNIX time in milliseconds (integers); ``verifiedAt`` is
   omitted while a PIN is unverified. Verifications are listed newest first.
9. ``enabled`` defaults to true. PUT of an application replaces it: ``name`` is required,
   an omitted ``enabled`` is true again and omitted configuration fields return to their
   defaults. PUT of a template merges: omitted fields keep their stored values (all fields
   of the update schema are optional); the result must still be a valid template.
10. ``pinLength`` defaults to 4 and must be 1..16. PINs are digits (NUMERIC), upper-case
    letters (ALPHA), upper-case hex (HEX) or upper-case letters and digits (ALPHANUMERIC).
    Verification compares exactly, so it is case-sensitive.
11. Send, resend and verify for a disabled application answer 403 ``FORBIDDEN``.
12. Every number is reachable: with ``ncNeeded`` true (the default) the answer carries
    ``ncStatus: NC_DESTINATION_REACHABLE``; with false ``ncStatus`` is omitted. ``smsStatus``
    is always ``MESSAGE_SENT``. A resend repeats the ``ncStatus`` choice of its send.
13. An unknown ``applicationId`` or ``messageId`` on send (or a template of another
    application) answers 404 ``NOT_FOUND``.
14. Voice and email are not simulated.
15. The unread Infobip pages are replaced by the decisions above.

Further choices:

- Unknown configuration and template fields are ignored; a template's ``language``
  defaults to ``en``.
- Authentication is checked before routing (an unknown path without a key answers 401); a
  known path with another method answers 404 ``NOT_FOUND``.
- Faults apply before authentication. A request that meets a ``latency`` or ``hang`` fault
  is then handled normally; any other fault answers without touching the state. An
  endpoint's own fault wins over a ``*`` fault.
- :meth:`SimulatorServer.reset` keeps applications and templates (they are setup, as in a
  real account) and clears PINs, limit windows, recorded requests, faults and the clock
  offset.
- PINs live in memory only; the log holds neither PINs, keys nor numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import math
import re
import secrets
import socket
import string
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

logger = logging.getLogger(__name__)

ENDPOINTS = ("applications", "messages", "send", "resend", "verify", "verifications")
PIN_PLACEHOLDER = "{{pin}}"
PIN_ALPHABETS = {
    "NUMERIC": string.digits,
    "ALPHA": string.ascii_uppercase,
    "HEX": "0123456789ABCDEF",
    "ALPHANUMERIC": string.ascii_uppercase + string.digits,
}
LANGUAGES = frozenset(
    {
        "en", "es", "ca", "da", "nl", "fr", "de", "it", "ja", "ko", "no",
        "pl", "ru", "sv", "fi", "hr", "sl", "ro", "pt_pt", "pt_br", "zh_cn", "zh_tw",
    }
)  # fmt: skip
DEFAULT_CONFIGURATION: dict[str, Any] = {
    "pinAttempts": 10,
    "allowMultiplePinVerifications": True,
    "pinTimeToLive": "15m",
    "verifyPinLimit": "1/3s",
    "sendPinPerApplicationLimit": "10000/1d",
    "sendPinPerPhoneNumberLimit": "3/1d",
}
DEFAULT_PIN_LENGTH = 4
PIN_LENGTH_RANGE = range(1, 17)

_DAY = 86_400.0
_YEAR = 365 * _DAY
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": _DAY}
_TTL_RE = re.compile(r"^(\d+)?(ms|s|m|h|d)$")
_LIMIT_RE = re.compile(r"^(\d+)/(\d+)?(ms|s|m|h|d)$")
_MSISDN_RE = re.compile(r"^\d{6,15}$")
_GENERAL_ERROR_TEXT = "Something went wrong. Please contact support."


# --- Errors and replies -------------------------------------------------------------------


class ApiError(Exception):
    """An error answer in Infobip's ``requestError.serviceException`` envelope."""

    def __init__(
        self,
        status: int,
        message_id: str,
        text: str,
        validation_errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message_id}: {text}")
        self.status = status
        self.message_id = message_id
        self.text = text
        self.validation_errors = dict(validation_errors or {})
        self.headers = dict(headers or {})

    def reply(self) -> Reply:
        """The HTTP answer for this error."""
        body = error_body(self.message_id, self.text, self.validation_errors)
        return Reply(self.status, body, dict(self.headers))


def error_body(
    message_id: str, text: str, validation_errors: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """Build the ``requestError.serviceException`` envelope."""
    exception: dict[str, Any] = {"messageId": message_id, "text": text}
    if validation_errors:
        exception["validationErrors"] = dict(validation_errors)
    return {"requestError": {"serviceException": exception}}


def _bad_request(
    errors: Mapping[str, list[str]] | None = None, text: str = "Bad request"
) -> ApiError:
    return ApiError(400, "BAD_REQUEST", text, errors)


def _not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "Requested resource not found")


def _too_many_requests(retry_after: float) -> ApiError:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return ApiError(429, "TOO_MANY_REQUESTS", "Too many requests", headers=headers)


@dataclass
class Reply:
    """An HTTP answer: a JSON ``body``, or ``raw`` bytes sent as they are."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None

    def payload(self) -> bytes:
        """The body as bytes."""
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body).encode()


# --- Formats ------------------------------------------------------------------------------


def parse_ttl(text: str) -> float:
    """Seconds of a ``pinTimeToLive`` such as ``"15m"``; ValueError if invalid or > 1 year."""
    match = _TTL_RE.match(text)
    if not match:
        raise ValueError("must look like 15m: {timeLength}{ms|s|m|h|d}")
    seconds = int(match.group(1) or 1) * _UNIT_SECONDS[match.group(2)]
    if not 0 < seconds <= _YEAR:
        raise ValueError("must be more than zero and at most one year")
    return seconds


def parse_limit(text: str, maximum: float = _YEAR) -> tuple[int, float]:
    """``(count, window seconds)`` of a limit such as ``"3/1d"``; ValueError if invalid."""
    match = _LIMIT_RE.match(text)
    if not match:
        raise ValueError("must look like 3/1d: {attempts}/{timeLength}{ms|s|m|h|d}")
    count = int(match.group(1))
    window = int(match.group(2) or 1) * _UNIT_SECONDS[match.group(3)]
    if count < 1 or not 0 < window <= maximum:
        raise ValueError("needs at least one attempt and a window within the allowed maximum")
    return count, window


def _check_positive_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return "must be a positive integer"
    return None


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be a boolean"


def _check_string(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _format_check(parse: Callable[[str], Any]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        try:
            parse(value)
        except ValueError as exc:
            return str(exc)
        return None

    return check


_CONFIGURATION_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "pinAttempts": _check_positive_int,
    "allowMultiplePinVerifications": _check_bool,
    "pinTimeToLive": _format_check(parse_ttl),
    "verifyPinLimit": _format_check(lambda text: parse_limit(text, _DAY)),
    "sendPinPerApplicationLimit": _format_check(parse_limit),
    "sendPinPerPhoneNumberLimit": _format_check(parse_limit),
}


def _check_message_text(value: Any) -> str | None:
    if not isinstance(value, str) or PIN_PLACEHOLDER not in value:
        return f"must be a string containing {PIN_PLACEHOLDER}"
    return None


def _check_pin_type(value: Any) -> str | None:
    if isinstance(value, str) and value in PIN_ALPHABETS:
        return None
    return f"must be one of {', '.join(PIN_ALPHABETS)}"


def _check_pin_length(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in PIN_LENGTH_RANGE:
        return f"must be an integer from {PIN_LENGTH_RANGE.start} to {PIN_LENGTH_RANGE.stop - 1}"
    return None


def _check_language(value: Any) -> str | None:
    if isinstance(value, str) and value in LANGUAGES:
        return None
    return "must be a supported language code"


def _check_speech_rate(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 <= value <= 2:
        return "must be a number from 0.5 to 2"
    return None


def _check_object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be an object"


_TEMPLATE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "messageText": _check_message_text,
    "pinType": _check_pin_type,
    "pinLength": _check_pin_length,
    "senderId": _check_string,
    "language": _check_language,
    "voiceName": _check_string,
    "repeatDTMF": _check_string,
    "speechRate": _check_speech_rate,
    "regional": _check_object,
}


def _checked_fields(
    given: Mapping[str, Any],
    checks: Mapping[str, Callable[[Any], str | None]],
    errors: dict[str, list[str]],
    prefix: str = "",
) -> dict[str, Any]:
    """The known, non-null fields of ``given`` that pass their check; problems go to errors."""
    accepted = {}
    for name, check in checks.items():
        if given.get(name) is None:
            continue
        problem = check(given[name])
        if problem:
            errors[prefix + name] = [problem]
        else:
            accepted[name] = given[name]
    return accepted


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad_request(text="The request body must be a JSON object")
    return body


def _query_bool(query: Mapping[str, str], name: str, default: bool | None) -> bool | None:
    value = query.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise _bad_request({name: ["must be true or false"]})
    return value.lower() == "true"


#: What the simulator accepts by default, and the ids ``infobip_otp_simulator``
#: gives its demo application and template, so a demo configured once keeps
#: working after a restart (the example project's ``DEMO_SIMULATOR_URL``).
DEFAULT_API_KEY = "sim-api-key"
DEMO_APPLICATION_ID = "INFOBIP-OTP-DEMO-APPLICATION"
DEMO_MESSAGE_ID = "INFOBIP-OTP-DEMO-MESSAGE"


def _new_id() -> str:
    return secrets.token_hex(16).upper()


def _digits(number: str) -> str:
    return "".join(char for char in number if char.isdigit())


# --- State --------------------------------------------------------------------------------


@dataclass
class _Application:
    application_id: str
    name: str
    enabled: bool
    configuration: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "applicationId": self.application_id,
            "name": self.name,
            "configuration": dict(self.configuration),
            "enabled": self.enabled,
        }


@dataclass
class _Template:
    message_id: str
    application_id: str
    fields: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "applicationId": self.application_id,
            "pinPlaceholder": PIN_PLACEHOLDER,
            **{name: self.fields[name] for name in _TEMPLATE_CHECKS if name in self.fields},
        }


@dataclass
class _Pin:
    pin_id: str
    application_id: str
    msisdn: str
    pin: str
    text: str
    nc_needed: bool
    sent_at: float
    expires_at: float
    attempts_remaining: int
    verified_at: float | None = None


class _FixedWindows:
    """Fixed-window counters; a window opens at the first counted hit of its key."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, ...], tuple[float, int]] = {}

    def wait_time(self, key: tuple[str, ...], limit: tuple[int, float], now: float) -> float:
        """Seconds until ``key`` may be counted again (0 when it may be now)."""
        count, window = limit
        start, used = self._windows.get(key, (now, 0))
        if now >= start + window or used < count:
            return 0.0
        return start + window - now

    def count(self, key: tuple[str, ...], limit: tuple[int, float], now: float) -> None:
        """Count one hit for ``key``."""
        start, used = self._windows.get(key, (now, 0))
        if now >= start + limit[1]:
            start, used = now, 0
        self._windows[key] = (start, used + 1)

    def enforce(self, rules: list[tuple[tuple[str, ...], tuple[int, float]]], now: float) -> None:
        """Count a hit on every rule, or raise 429 (counting nothing) if one is exhausted."""
        wait = max(self.wait_time(key, limit, now) for key, limit in rules)
        if wait > 0:
            raise _too_many_requests(wait)
        for key, limit in rules:
            self.count(key, limit, now)

    def clear(self) -> None:
        """Forget every window."""
        self._windows.clear()


@dataclass
class ApiRequest:
    """What an API operation needs from an HTTP request."""

    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None


class InfobipApi:
    """The simulated Infobip 2FA state and operations, independent of HTTP."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._clock_offset = 0.0
        self._applications: dict[str, _Application] = {}
        self._templates: dict[str, _Template] = {}
        self._pins: dict[str, _Pin] = {}
        self._last_pins: dict[str, _Pin] = {}
        self._windows = _FixedWindows()

    # Clock and test hooks.

    def now(self) -> float:
        """The simulator's clock: wall time plus the offset added by :meth:`advance`."""
        return time.time() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._clock_offset += seconds

    def last_pin(self, to: str) -> _Pin | None:
        """The last PIN sent to a number (``+`` and separators are ignored)."""
        with self._lock:
            return self._last_pins.get(_digits(to))

    def reset(self) -> None:
        """Forget PINs, limit windows and the clock offset; keep applications and templates."""
        with self._lock:
            self._clock_offset = 0.0
            self._pins.clear()
            self._last_pins.clear()
            self._windows.clear()

    # Applications.

    def list_applications(self, request: ApiRequest) -> Reply:
        """``GET /2fa/2/applications``."""
        with self._lock:
            return Reply(200, [app.as_json() for app in self._applications.values()])

    def create_application(self, request: ApiRequest) -> Reply:
        """``POST /2fa/2/applications``."""
        name, enabled, configuration = self._application_fields(request.body)
        # ``new_id`` is only ever set by the direct Python setup (fixed demo ids).
        application = _Application(
            request.params.get("new_id") or _new_id(), name, enabled, configuration
        )
        with self._lock:
            self._applications[application.application_id] = application
        return Reply(201, application.as_json())

    def get_application(self, request: ApiRequest) -> Reply:
        """``GET /2fa/2/applications/{appId}``."""
        with self._lock:
            return Reply(200, self._application(request.params["app_id"]).as_json())

    def update_application(self, request: ApiRequest) -> Reply:
        """``PUT /2fa/2/applications/{appId}``: replaces name, enabled and configuration."""
        with self._lock:
            application = self._application(request.params["app_id"])
            name, enabled, configuration = self._application_fields(request.body)
            application.name = name
            application.enabled = enabled
            application.configuration = configuration
            return Reply(200, application.as_json())

    @staticmethod
    def _application_fields(body: Any) -> tuple[str, bool, dict[str, Any]]:
        body = _require_object(body)
        errors: dict[str, list[str]] = {}
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            errors["name"] = ["must not be blank"]
        enabled = body.get("enabled", True)
        if _check_bool(enabled):
            errors["enabled"] = ["must be a boolean"]
        given = body.get("configuration")
        if given is None:
            given = {}
        elif _check_object(given):
            errors["configuration"] = ["must be an object"]
            given = {}
        configuration = {
            **DEFAULT_CONFIGURATION,
            **_checked_fields(given, _CONFIGURATION_CHECKS, errors, "configuration."),
        }
        if errors:
            raise _bad_request(errors)
        return name, enabled, configuration

    def _application(self, app_id: str) -> _Application:
        application = self._applications.get(app_id)
        if application is None:
            raise _not_found()
        return application

    # Templates.

    def list_templates(self, request: ApiRequest) -> Reply:
        """``GET /2fa/2/applications/{appId}/messages``."""
        with self._lock:
            app_id = self._application(request.params["app_id"]).application_id
            templates = [
                t.as_json() for t in self._templates.values() if t.application_id == app_id
            ]
            return Reply(200, templates)

    def create_template(self, request: ApiRequest) -> Reply:
        """``POST /2fa/2/applications/{appId}/messages``."""
        base = {"pinLength": DEFAULT_PIN_LENGTH, "language": "en"}
        fields = self._template_fields(request.body, base)
        with self._lock:
            app_id = self._application(request.params["app_id"]).application_id
            template = _Template(request.params.get("new_id") or _new_id(), app_id, fields)
            self._templates[template.message_id] = template
            return Reply(200, template.as_json())

    def get_template(self, request: ApiRequest) -> Reply:
        """``GET /2fa/2/applications/{appId}/messages/{msgId}``."""
        with self._lock:
            return Reply(200, self._template(request.params).as_json())

    def update_template(self, request: ApiRequest) -> Reply:
        """``PUT /2fa/2/applications/{appId}/messages/{msgId}``: merges the given fields."""
        with self._lock:
            template = self._template(request.params)
            template.fields = self._template_fields(request.body, template.fields)
            return Reply(200, template.as_json())

    @staticmethod
    def _template_fields(body: Any, base: Mapping[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        fields = {**base, **_checked_fields(_require_object(body), _TEMPLATE_CHECKS, errors)}
        for required in ("messageText", "pinType"):
            if required not in fields and required not in errors:
                errors[required] = ["is required"]
        if errors:
            raise _bad_request(errors)
        return fields

    def _template(self, params: Mapping[str, str]) -> _Template:
        template = self._templates.get(params["msg_id"])
        if template is None or template.application_id != params["app_id"]:
            raise _not_found()
        return template

    # PINs.

    def send_pin(self, request: ApiRequest) -> Reply:
        """``POST /2fa/2/pin?ncNeeded=...``: make a PIN and "send" it."""
        nc_needed = bool(_query_bool(request.query, "ncNeeded", True))
        body = _require_object(request.body)
        errors: dict[str, list[str]] = {}
        for name in ("applicationId", "messageId", "to"):
            if not isinstance(body.get(name), str) or not body[name]:
                errors[name] = ["is required"]
        if "to" not in errors and not _MSISDN_RE.match(body["to"]):
            errors["to"] = ["must be an international number of 6 to 15 digits without +"]
        placeholders = body.get("placeholders") or {}
        if not isinstance(placeholders, dict) or "pin" in placeholders:
            errors["placeholders"] = ["must be an object of strings without the pin key"]
        if errors:
            raise _bad_request(errors)
        with self._lock:
            application = self._enabled_application(body["applicationId"])
            template = self._template(
                {"app_id": body["applicationId"], "msg_id": body["messageId"]}
            )
            self._count_send(application, body["to"])
            pin = self._new_pin(application, template, body["to"], placeholders, nc_needed)
            return Reply(200, self._sent(pin))

    def resend_pin(self, request: ApiRequest) -> Reply:
        """``POST /2fa/2/pin/{pinId}/resend``: the same PIN again, TTL and attempts unchanged."""
        if request.body is not None:
            _require_object(request.body)
        with self._lock:
            pin = self._pin(request.params["pin_id"])
            application = self._enabled_application(pin.application_id)
            self._count_send(application, pin.msisdn)
            self._last_pins[pin.msisdn] = pin
            return Reply(200, self._sent(pin))

    def verify_pin(self, request: ApiRequest) -> Reply:
        """``POST /2fa/2/pin/{pinId}/verify``."""
        body = _require_object(request.body)
        if not isinstance(body.get("pin"), str) or not body["pin"]:
            raise _bad_request({"pin": ["is required"]})
        with self._lock:
            pin = self._pin(request.params["pin_id"])
            application = self._enabled_application(pin.application_id)
            now = self.now()
            limit = parse_limit(application.configuration["verifyPinLimit"], _DAY)
            self._windows.enforce(
                [(("verify", application.application_id, pin.msisdn), limit)], now
            )
            error = self._check_pin(pin, body["pin"], application, now)
            answer: dict[str, Any] = {
                "pinId": pin.pin_id,
                "msisdn": pin.msisdn,
                "verified": error is None,
                "attemptsRemaining": pin.attempts_remaining,
            }
            if error:
                answer["pinError"] = error
            return Reply(200, answer)

    def verifications(self, request: ApiRequest) -> Reply:
        """``GET /2fa/2/applications/{appId}/verifications?msisdn=...&verified=...&sent=...``."""
        msisdn = request.query.get("msisdn")
        if not msisdn:
            raise _bad_request({"msisdn": ["is required"]})
        verified = _query_bool(request.query, "verified", None)
        sent = _query_bool(request.query, "sent", None)
        with self._lock:
            app_id = self._application(request.params["app_id"]).application_id
            pins = [p for p in self._pins.values() if p.application_id == app_id]
        rows = []
        for pin in sorted(pins, key=lambda p: p.sent_at, reverse=True):
            is_verified = pin.verified_at is not None
            if pin.msisdn != msisdn or sent is False or verified not in (None, is_verified):
                continue
            row: dict[str, Any] = {"msisdn": pin.msisdn, "verified": is_verified}
            if pin.verified_at is not None:
                row["verifiedAt"] = int(pin.verified_at * 1000)
            row["sentAt"] = int(pin.sent_at * 1000)
            rows.append(row)
        return Reply(200, {"verifications": rows})

    def _enabled_application(self, app_id: str) -> _Application:
        application = self._application(app_id)
        if not application.enabled:
            raise ApiError(403, "FORBIDDEN", "Forbidden")
        return application

    def _pin(self, pin_id: str) -> _Pin:
        pin = self._pins.get(pin_id)
        if pin is None:
            raise _not_found()
        return pin

    def _count_send(self, application: _Application, msisdn: str) -> None:
        configuration = application.configuration
        app_id = application.application_id
        self._windows.enforce(
            [
                (("send-app", app_id), parse_limit(configuration["sendPinPerApplicationLimit"])),
                (
                    ("send-number", app_id, msisdn),
                    parse_limit(configuration["sendPinPerPhoneNumberLimit"]),
                ),
            ],
            self.now(),
        )

    def _new_pin(
        self,
        application: _Application,
        template: _Template,
        msisdn: str,
        placeholders: Mapping[str, Any],
        nc_needed: bool,
    ) -> _Pin:
        alphabet = PIN_ALPHABETS[template.fields["pinType"]]
        code = "".join(secrets.choice(alphabet) for _ in range(template.fields["pinLength"]))
        text = template.fields["messageText"].replace(PIN_PLACEHOLDER, code)
        for name, value in placeholders.items():
            text = text.replace("{{" + name + "}}", str(value))
        now = self.now()
        configuration = application.configuration
        pin = _Pin(
            pin_id=_new_id(),
            application_id=application.application_id,
            msisdn=msisdn,
            pin=code,
            text=text,
            nc_needed=nc_needed,
            sent_at=now,
            expires_at=now + parse_ttl(configuration["pinTimeToLive"]),
            attempts_remaining=configuration["pinAttempts"],
        )
        self._pins[pin.pin_id] = pin
        self._last_pins[msisdn] = pin
        return pin

    @staticmethod
    def _sent(pin: _Pin) -> dict[str, Any]:
        answer = {"pinId": pin.pin_id, "to": pin.msisdn}
        if pin.nc_needed:
            answer["ncStatus"] = "NC_DESTINATION_REACHABLE"
        answer["smsStatus"] = "MESSAGE_SENT"
        return answer

    @staticmethod
    def _check_pin(pin: _Pin, given: str, application: _Application, now: float) -> str | None:
        """Apply one verification to ``pin``; return its ``pinError`` or None on success."""
        if now >= pin.expires_at:
            return "TTL_EXPIRED"
        correct = hmac.compare_digest(given.encode(), pin.pin.encode())
        if pin.verified_at is not None:
            if not application.configuration["allowMultiplePinVerifications"]:
                return "NO_MORE_PIN_ATTEMPTS"
            return None if correct else "WRONG_PIN"
        if pin.attempts_remaining <= 0:
            return "NO_MORE_PIN_ATTEMPTS"
        if correct:
            pin.verified_at = now
            pin.attempts_remaining = 0
            return None
        pin.attempts_remaining -= 1
        return "WRONG_PIN"


# --- Faults -------------------------------------------------------------------------------

_FAULT_PARAMS: dict[str, tuple[str, ...]] = {
    "latency": ("ms",),
    "hang": ("seconds",),
    "status": ("code",),
    "429": ("retry_after",),
    "malformed": (),
    "contradictory": (),
    "reset": (),
}
_FAULT_ALIASES = {
    "latency_ms": ("latency", {}),
    "500": ("status", {"code": 500}),
    "503": ("status", {"code": 503}),
    "too_many_requests": ("429", {}),
}


@dataclass
class Fault:
    """One injected misbehaviour; ``times`` None means until cleared."""

    kind: str
    ms: float = 0.0
    seconds: float = 30.0
    code: int = 500
    retry_after: int = 1
    times: int | None = None

    @classmethod
    def build(cls, kind: str, **params: Any) -> Fault:
        """Validate a fault kind and its parameters; ValueError if they make no sense."""
        kind, implied = _FAULT_ALIASES.get(kind, (kind, {}))
        if kind not in _FAULT_PARAMS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(_FAULT_PARAMS)}")
        unknown = set(params) - set(_FAULT_PARAMS[kind]) - {"times"}
        if unknown:
            raise ValueError(f"fault {kind!r} takes no {', '.join(sorted(unknown))}")
        fault = cls(kind, **{**implied, **params})
        if fault.ms < 0 or fault.seconds < 0 or fault.retry_after < 0:
            raise ValueError("fault durations must not be negative")
        if not 500 <= fault.code <= 599:
            raise ValueError("a status fault needs a 5xx code")
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be at least 1")
        return fault

    def describe(self) -> dict[str, Any]:
        """The kind with its own parameters, as JSON."""
        values = asdict(self)
        own = {name: values[name] for name in _FAULT_PARAMS[self.kind]}
        return {"kind": self.kind, **own, "times": self.times}


def parse_fault(spec: str) -> tuple[str, str, dict[str, Any]]:
    """Parse ``endpoint:kind[:k=v,...]`` (the CLI form) into ``(endpoint, kind, params)``."""
    endpoint, _, rest = spec.partition(":")
    kind, _, raw_params = rest.partition(":")
    if not kind:
        raise ValueError(f"fault {spec!r} must look like endpoint:kind[:k=v,...]")
    params: dict[str, Any] = {}
    for pair in filter(None, raw_params.split(",")):
        name, equals, value = pair.partition("=")
        if not equals:
            raise ValueError(f"fault parameter {pair!r} must look like k=v")
        params[name.strip()] = _number(value.strip())
    _check_endpoint(endpoint)
    Fault.build(kind, **params)
    return endpoint, kind, params


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"fault parameter value {text!r} must be a number") from None


def _check_endpoint(endpoint: str) -> None:
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; use * or one of {', '.join(ENDPOINTS)}")


class _FaultBoard:
    """The active faults, per endpoint name or ``*``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}

    def set(self, endpoint: str, fault: Fault) -> None:
        _check_endpoint(endpoint)
        with self._lock:
            self._faults[endpoint] = fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str | None) -> Fault | None:
        """The fault for this request, counting it against ``times``."""
        with self._lock:
            key = endpoint if endpoint in self._faults else "*"
            fault = self._faults.get(key)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    del self._faults[key]
            return fault

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {endpoint: fault.describe() for endpoint, fault in self._faults.items()}


def _contradictory_reply(endpoint: str | None, params: Mapping[str, str], body: Any) -> Reply:
    if endpoint == "verify":
        other_id = _new_id()
        while other_id == params.get("pin_id"):
            other_id = _new_id()
        return Reply(200, {"verified": True, "pinError": "WRONG_PIN", "pinId": other_id})
    if endpoint in ("send", "resend"):
        answer = {"smsStatus": "MESSAGE_SENT"}
        if isinstance(body, dict) and isinstance(body.get("to"), str):
            answer["to"] = body["to"]
        return Reply(200, answer)
    return Reply(200, error_body("GENERAL_ERROR", _GENERAL_ERROR_TEXT))


# --- Requests and routing -----------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request received on an API path, as the simulator saw it.

    ``body`` is the parsed JSON, the raw text if it was not JSON, or None if empty;
    ``time`` is the simulator clock (UNIX seconds, :meth:`SimulatorServer.advance` included);
    ``fault`` is the kind of fault the request met, if any.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    endpoint: str | None
    time: float
    fault: str | None = None

    def as_json(self) -> dict[str, Any]:
        """A JSON view with the credentials of ``Authorization`` masked."""
        data = asdict(self)
        for name in data["headers"]:
            if name.lower() == "authorization":
                scheme = data["headers"][name].partition(" ")[0]
                data["headers"][name] = f"{scheme} ***"
        return data


_Operation = Callable[[InfobipApi, ApiRequest], Reply]
_ROUTES: list[tuple[re.Pattern[str], str, dict[str, _Operation]]] = [
    (
        re.compile(r"^/2fa/2/applications$"),
        "applications",
        {"GET": InfobipApi.list_applications, "POST": InfobipApi.create_application},
    ),
    (
        re.compile(r"^/2fa/2/applications/(?P<app_id>[^/]+)$"),
        "applications",
        {"GET": InfobipApi.get_application, "PUT": InfobipApi.update_application},
    ),
    (
        re.compile(r"^/2fa/2/applications/(?P<app_id>[^/]+)/messages$"),
        "messages",
        {"GET": InfobipApi.list_templates, "POST": InfobipApi.create_template},
    ),
    (
        re.compile(r"^/2fa/2/applications/(?P<app_id>[^/]+)/messages/(?P<msg_id>[^/]+)$"),
        "messages",
        {"GET": InfobipApi.get_template, "PUT": InfobipApi.update_template},
    ),
    (
        re.compile(r"^/2fa/2/applications/(?P<app_id>[^/]+)/verifications$"),
        "verifications",
        {"GET": InfobipApi.verifications},
    ),
    (re.compile(r"^/2fa/2/pin$"), "send", {"POST": InfobipApi.send_pin}),
    (
        re.compile(r"^/2fa/2/pin/(?P<pin_id>[^/]+)/resend$"),
        "resend",
        {"POST": InfobipApi.resend_pin},
    ),
    (
        re.compile(r"^/2fa/2/pin/(?P<pin_id>[^/]+)/verify$"),
        "verify",
        {"POST": InfobipApi.verify_pin},
    ),
]


def _route(path: str) -> tuple[str | None, dict[str, _Operation], dict[str, str]]:
    """``(endpoint name, operations by method, path parameters)`` for an API path."""
    for pattern, endpoint, operations in _ROUTES:
        match = pattern.match(path)
        if match:
            return endpoint, operations, {k: unquote(v) for k, v in match.groupdict().items()}
    return None, {}, {}


class _Malformed:
    """Marker for a request body that is not valid JSON."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return _Malformed(text)


_RESET = object()  # answer by resetting the connection


# --- Server -------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for handlers that are hanging on purpose.
    block_on_close = False

    def __init__(self, address: tuple[str, int], simulator: SimulatorServer) -> None:
        self.simulator = simulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or vanish are part of the job, not errors worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; Nagle would hold the body for a delayed ACK.
    disable_nagle_algorithm = True
    server_version = "InfobipSimulator/1.0"

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = self.headers.get("Content-Length", "0")
        raw = self.rfile.read(int(length)) if length.isdigit() else b""
        simulator = self.server.simulator
        if url.path.startswith("/_simulator/"):
            reply: Reply | object = simulator._control(self.command, url.path, query, raw)
        else:
            reply = simulator._serve_api(self.command, url.path, query, dict(self.headers), raw)
        if reply is _RESET:
            self._reset_connection()
        elif isinstance(reply, Reply):
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        payload = reply.payload()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _reset_connection(self) -> None:
        # Linger 0 makes close() send RST instead of FIN: the client sees a connection reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines carry numbers; log only that something happened.
        logger.debug("simulator %s request answered", self.command)


class SimulatorServer:
    """A local Infobip 2FA API over HTTP, with test hooks and fault injection."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        latency_ms: float = 0,
        faults: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Configure the server; ``faults`` maps endpoint names to ``{"kind": ..., **params}``."""
        self.host = host
        self.port = port
        self.api_key = api_key
        self.latency_ms = latency_ms
        self.api = InfobipApi()
        self._faults = _FaultBoard()
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        for endpoint, spec in (faults or {}).items():
            params = dict(spec)
            self.set_fault(endpoint, str(params.pop("kind", "")), **params)

    # Lifecycle.

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:8085`` (known once started)."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimulatorServer:
        """Bind (port 0 picks a free port) and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("the simulator is already started")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            # A short poll keeps stop() (and so every test fixture) fast.
            kwargs={"poll_interval": 0.01},
            name=f"infobip-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging handlers and close open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with httpd.connections_lock:
            connections = list(httpd.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()

    def serve_forever(self) -> None:
        """Serve in the calling thread until Ctrl-C (or :meth:`stop` from another thread)."""
        if self._httpd is None:
            self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Faults.

    def set_fault(self, endpoint: str, kind: str, **params: Any) -> None:
        """Make ``endpoint`` (or ``*``) misbehave, e.g. ``set_fault("send", "hang", seconds=2)``."""
        self._faults.set(endpoint, Fault.build(kind, **params))

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    # Direct setup, without HTTP.

    def create_application(
        self,
        name: str = "infobip_otp",
        *,
        enabled: bool = True,
        application_id: str | None = None,
        **configuration: Any,
    ) -> dict[str, Any]:
        """Create an application; configuration keys in camelCase or snake_case.

        ``application_id`` fixes the id (for demos); by default it is random.
        """
        body = {
            "name": name,
            "enabled": enabled,
            "configuration": {_camel_case(key): value for key, value in configuration.items()},
        }
        params = {"new_id": application_id} if application_id else {}
        return self._direct(self.api.create_application, ApiRequest(params=params, body=body))

    def create_template(
        self,
        application_id: str,
        message_text: str = "Your code is {{pin}}",
        pin_type: str = "NUMERIC",
        pin_length: int = 6,
        sender_id: str | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """Create an SMS template for an application (``message_id`` fixes its id)."""
        body = {
            "messageText": message_text,
            "pinType": pin_type,
            "pinLength": pin_length,
            "senderId": sender_id,
        }
        params = {"app_id": application_id, **({"new_id": message_id} if message_id else {})}
        request = ApiRequest(params=params, body=body)
        return self._direct(self.api.create_template, request)

    @staticmethod
    def _direct(operation: Callable[[ApiRequest], Reply], request: ApiRequest) -> dict[str, Any]:
        try:
            body: dict[str, Any] = operation(request).body
        except ApiError as exc:
            raise ValueError(f"{exc}: {exc.validation_errors}") from None
        return body

    # Test hooks.

    def last_pin(self, to: str) -> str | None:
        """The PIN last sent to a number, given as ``+4477...`` or digits."""
        pin = self.api.last_pin(to)
        return pin.pin if pin else None

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (TTLs and limit windows), without sleeping."""
        self.api.advance(seconds)

    def requests_for(self, endpoint: str | None = None) -> list[RecordedRequest]:
        """Recorded API requests, all or for one endpoint name, oldest first."""
        with self._requests_lock:
            return [r for r in self._requests if endpoint is None or r.endpoint == endpoint]

    def request_count(self, endpoint: str | None = None) -> int:
        """How many API requests were received, all or for one endpoint name."""
        return len(self.requests_for(endpoint))

    def reset(self) -> None:
        """Clear PINs, limits, recorded requests, faults and the clock offset."""
        self.api.reset()
        self.clear_faults()
        with self._requests_lock:
            self._requests.clear()

    # HTTP handling, called from handler threads.

    def _serve_api(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> Reply | object:
        endpoint, operations, params = _route(path)
        body = _parse_body(raw)
        fault = self._faults.take(endpoint)
        self._record(method, path, query, headers, body, endpoint, fault)
        delay = self.latency_ms / 1000 + (
            fault.ms / 1000 if fault and fault.kind == "latency" else 0
        )
        if fault and fault.kind == "hang":
            delay += fault.seconds
        if delay and self._stopping.wait(delay):
            return _RESET
        if fault and fault.kind not in ("latency", "hang"):
            return self._fault_reply(fault, endpoint, params, body)
        try:
            self._authenticate(headers)
            operation = operations.get(method)
            if operation is None:
                raise _not_found()
            if isinstance(body, _Malformed):
                raise _bad_request(text="The request body is not valid JSON")
            return operation(self.api, ApiRequest(params, query, body))
        except ApiError as exc:
            return exc.reply()
        except Exception:
            # A simulator bug should reach the client as a 500, not as a dropped connection.
            logger.exception("simulator failed on a %s %s request", method, endpoint)
            return Reply(500, error_body("GENERAL_ERROR", _GENERAL_ERROR_TEXT))

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, key = value.partition(" ")
        expected = self.api_key.encode()
        if scheme.lower() != "app" or not hmac.compare_digest(key.strip().encode(), expected):
            raise ApiError(401, "UNAUTHORIZED", "Invalid login details")

    @staticmethod
    def _fault_reply(
        fault: Fault, endpoint: str | None, params: Mapping[str, str], body: Any
    ) -> Reply | object:
        if fault.kind == "reset":
            return _RESET
        if fault.kind == "status":
            return Reply(fault.code, error_body("GENERAL_ERROR", _GENERAL_ERROR_TEXT))
        if fault.kind == "429":
            headers = {"Retry-After": str(fault.retry_after)}
            return Reply(429, error_body("TOO_MANY_REQUESTS", "Too many requests"), headers)
        if fault.kind == "malformed":
            return Reply(200, raw=b'{"pinId": "5C9A1E0B7F2D4A6C8E0A2C4E6A8C0E2A", "to": ')
        return _contradictory_reply(endpoint, params, body)

    def _record(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        endpoint: str | None,
        fault: Fault | None,
    ) -> None:
        if isinstance(body, _Malformed):
            body = body.text
        recorded = RecordedRequest(
            method,
            path,
            query,
            headers,
            body,
            endpoint,
            self.api.now(),
            fault.kind if fault else None,
        )
        with self._requests_lock:
            self._requests.append(recorded)

    def _control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Reply:
        """The ``/_simulator/`` paths, for a test or demo in another process."""
        try:
            return self._control_action(method, path.removeprefix("/_simulator/"), query, raw)
        except ApiError as exc:
            return exc.reply()
        except (ValueError, TypeError) as exc:
            return Reply(400, error_body("BAD_REQUEST", str(exc)))

    def _control_action(self, method: str, action: str, query: dict[str, str], raw: bytes) -> Reply:
        body = _parse_body(raw)
        if isinstance(body, _Malformed):
            raise _bad_request(text="The request body is not valid JSON")
        if method == "GET" and action.startswith("pins/"):
            pin = self.api.last_pin(unquote(action.removeprefix("pins/")))
            if pin is None:
                return Reply(404, {"pin": None})
            return Reply(
                200, {"pin": pin.pin, "pinId": pin.pin_id, "to": pin.msisdn, "text": pin.text}
            )
        if method == "GET" and action == "requests":
            requests = [r.as_json() for r in self.requests_for(query.get("endpoint"))]
            return Reply(200, {"count": len(requests), "requests": requests})
        if action == "faults":
            if method == "POST":
                spec = dict(_require_object(body))
                self.set_fault(str(spec.pop("endpoint", "*")), str(spec.pop("kind", "")), **spec)
            elif method == "DELETE":
                self.clear_faults()
            elif method != "GET":
                raise _not_found()
            return Reply(200, {"faults": self._faults.describe()})
        if method == "POST" and action == "advance":
            seconds = _require_object(body).get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise _bad_request({"seconds": ["must be a number"]})
            self.advance(seconds)
            return Reply(200, {"now": self.api.now()})
        if method == "POST" and action == "reset":
            self.reset()
            return Reply(200, {"reset": True})
        raise _not_found()


def _camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# --- Command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, default_port: int = 8085) -> None:
    """Add the simulator options (shared by this CLI and the management command)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=default_port, help="port, 0 for any free one")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key clients must send")
    parser.add_argument("--latency-ms", type=float, default=0, help="delay added to every answer")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ENDPOINT:KIND[:K=V,...]",
        help="inject a fault, e.g. send:hang:seconds=5,times=1 (repeatable)",
    )


def build_server(
    host: str = "127.0.0.1",
    port: int = 8085,
    api_key: str = DEFAULT_API_KEY,
    latency_ms: float = 0,
    faults: Iterable[str] = (),
) -> SimulatorServer:
    """A server from the command-line options; ValueError on a bad fault spec."""
    server = SimulatorServer(host=host, port=port, api_key=api_key, latency_ms=latency_ms)
    for spec in faults:
        endpoint, kind, params = parse_fault(spec)
        server.set_fault(endpoint, kind, **params)
    return server


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; print its URL first."""
    parser = argparse.ArgumentParser(
        prog="python -m infobip_otp.testing.simulator", description="Local Infobip 2FA simulator."
    )
    add_arguments(parser)
    options = parser.parse_args(argv)
    try:
        server = build_server(
            options.host, options.port, options.api_key, options.latency_ms, options.fault
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        server.start()
    except OSError as exc:
        print(f"cannot listen on {options.host}:{options.port}: {exc}", file=sys.stderr)
        return 1
    print(server.url, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
